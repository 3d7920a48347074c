//! zig-greet's build: a library module and the executable that imports it, as `zig init` lays out.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const greet = b.addModule("greet", .{
        .root_source_file = b.path("src/greet.zig"),
        .target = target,
    });
    const exe = b.addExecutable(.{
        .name = "zig-greet",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/main.zig"),
            .target = target,
            .optimize = optimize,
            .imports = &.{.{ .name = "greet", .module = greet }},
        }),
    });
    b.installArtifact(exe);

    const tests = b.addTest(.{ .root_module = greet });
    b.step("test", "Run the unit tests").dependOn(&b.addRunArtifact(tests).step);
}
