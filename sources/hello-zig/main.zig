//! hello-zig: a static Zig program whose output proves the runtime works, not just a print:
//! threads (std.Thread), heap allocation (the process' general purpose allocator) and
//! std.fmt formatting. The output is the same on every platform and every run.
const std = @import("std");

const workers = 4;
const per_worker = 250_000;

/// Sums the squares of one worker's share of 1..workers*per_worker, modulo 2^64.
fn work(index: usize, result: *u64) void {
    var sum: u64 = 0;
    var n: u64 = index * per_worker + 1;
    const end: u64 = (index + 1) * per_worker;
    while (n <= end) : (n += 1) sum +%= n * n;
    result.* = sum;
}

pub fn main(init: std.process.Init) !void {
    const gpa = init.gpa;

    // Threads: each writes its own slot, so joining is the only synchronisation needed.
    var sums: [workers]u64 = undefined;
    var threads: [workers]std.Thread = undefined;
    for (&threads, 0..) |*thread, index| thread.* = try std.Thread.spawn(.{}, work, .{ index, &sums[index] });
    for (threads) |thread| thread.join();
    var total: u64 = 0;
    for (sums) |sum| total +%= sum;

    // Heap: a growing list of formatted strings, each allocated, then freed.
    var words: std.ArrayList([]u8) = .empty;
    defer {
        for (words.items) |word| gpa.free(word);
        words.deinit(gpa);
    }
    for (0..10) |i| try words.append(gpa, try std.fmt.allocPrint(gpa, "{d}", .{i * i}));
    const joined = try std.mem.join(gpa, ",", words.items);
    defer gpa.free(joined);

    var buffer: [1024]u8 = undefined;
    var stdout: std.Io.File.Writer = .init(.stdout(), init.io, &buffer);
    const out = &stdout.interface;
    try out.print("Hello from OS-less container (Zig edition)\n", .{});
    try out.print("threads: {d} workers, sum of squares 1..{d} = {d} (0x{x})\n", .{ workers, workers * per_worker, total, total });
    try out.print("heap: {d} squares [{s}]\n", .{ words.items.len, joined });
    try out.print("fmt: {d:.3} {e} |{s:>6}|{s:<6}| {b:0>8}\n", .{ std.math.pi, 1234.5, "right", "left", @as(u8, 0xa5) });
    try out.flush();
}
