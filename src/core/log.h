// Logging: the library never prints; it calls a sink that the executable installs (per Engine/owner object,
// passed down explicitly). A null sink drops messages.
#pragma once

#include <functional>
#include <string_view>

namespace exl {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// component: short tag such as "load", "cache", "sched", "http".
using LogSink = std::function<void(LogLevel level, std::string_view component, std::string_view message)>;

// Progress of long work: done out of total units, with a label.
using ProgressSink = std::function<void(std::string_view label, long long done, long long total)>;

}  // namespace exl
