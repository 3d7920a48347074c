//! zig-greet: prints a greeting, or its version with --version.
const std = @import("std");
const greet = @import("greet");

const usage = "usage: zig-greet [--version] [NAME]\n";

pub fn main(init: std.process.Init) !void {
    const args = try init.minimal.args.toSlice(init.arena.allocator());
    var buffer: [256]u8 = undefined;
    var stdout: std.Io.File.Writer = .init(.stdout(), init.io, &buffer);
    const out = &stdout.interface;
    if (args.len > 1 and std.mem.eql(u8, args[1], "--version")) {
        try out.print("zig-greet {s}\n", .{greet.version});
    } else if (args.len > 1 and std.mem.startsWith(u8, args[1], "-")) {
        try out.writeAll(usage);
        try out.flush();
        std.process.exit(2);
    } else {
        try greet.greet(out, if (args.len > 1) args[1] else "scratch");
    }
    try out.flush();
}
