// hello-cxx: a static C++ program whose output proves its runtime works in a scratch image:
// threads (std::thread), exceptions (throw and catch through a function), allocation (the heap,
// containers, smart pointers) and formatting (std::format, iostream). The output is deterministic.
#include <format>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kWorkers = 4;
constexpr long kLimit = 1000;

// Each worker sums its own slice of 1..kLimit into its own slot: joined, the total is fixed.
long sum_in_threads() {
    std::vector<long> sums(kWorkers, 0);
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back([w, &sums] {
            const long slice = kLimit / kWorkers;
            for (long i = w * slice + 1; i <= (w + 1) * slice; ++i) sums[w] += i;
        });
    }
    for (auto& worker : workers) worker.join();
    return std::accumulate(sums.begin(), sums.end(), 0L);
}

int parse_port(const std::string& text) {
    const int port = std::stoi(text);  // throws std::invalid_argument on "not-a-port"
    if (port < 1 || port > 65535) throw std::out_of_range(std::format("port {} out of range", port));
    return port;
}

std::string caught(const std::string& text) {
    try {
        return std::format("{} is fine", parse_port(text));
    } catch (const std::invalid_argument&) {
        return std::format("\"{}\" is not a number", text);
    } catch (const std::exception& e) {
        return e.what();
    }
}

}  // namespace

int main() {
    const long total = sum_in_threads();

    auto counts = std::make_unique<std::map<std::string, int>>();
    for (const char* word : {"scratch", "static", "scratch", "binary", "static", "scratch"}) {
        ++(*counts)[word];
    }
    std::vector<std::string> heap;
    for (int i = 0; i < 1000; ++i) heap.push_back(std::string(64, static_cast<char>('a' + i % 26)));
    std::size_t bytes = 0;
    for (const auto& s : heap) bytes += s.size();

    std::cout << "Hello from OS-less container (C++ edition)\n";
    std::cout << std::format("threads: {} workers summed 1..{} = {}\n", kWorkers, kLimit, total);
    std::cout << std::format("exceptions: {}; {}; {}\n", caught("8080"), caught("not-a-port"),
                             caught("70000"));
    std::cout << std::format("allocation: {} strings, {} bytes;", heap.size(), bytes);
    for (const auto& [word, count] : *counts) std::cout << std::format(" {}={}", word, count);
    std::cout << '\n';
    std::cout << std::format("formatting: {:.3f} {:#x} {:>6}|{:<6}|\n", 3.14159, 255, "right", "left");
    return 0;
}
