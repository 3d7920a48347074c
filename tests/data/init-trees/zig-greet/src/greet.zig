//! The greeting, in a module of its own.
const std = @import("std");

pub const version = "0.4.0";

pub fn greet(writer: *std.Io.Writer, who: []const u8) std.Io.Writer.Error!void {
    try writer.print("hello, {s}\n", .{who});
}

test "greets" {
    var buffer: [64]u8 = undefined;
    var writer: std.Io.Writer = .fixed(&buffer);
    try greet(&writer, "zig");
    try std.testing.expectEqualStrings("hello, zig\n", writer.buffered());
}
