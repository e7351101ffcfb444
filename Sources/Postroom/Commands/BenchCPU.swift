import Foundation

/// The daemon's CPU cost per message, as `postroom bench` prints it.
///
/// The figures come from the `rusage` the kernel returns with the daemon's exit status, so
/// they count the daemon's threads and nothing else: neither the bench's own generator and
/// inotify reader nor the other processes on a shared machine. They are the measure to compare
/// builds by when wall-clock throughput is noisy.
extension BenchRun {
    /// Milliseconds of CPU per measured message: total, user, system; and context switches per message.
    static func cpuPerMessage(_ usage: ResourceUsage, messages: Int) -> (total: Double, user: Double, system: Double, switches: Double) {
        let count = Double(max(messages, 1))
        return (usage.cpuSeconds * 1000 / count, usage.userSeconds * 1000 / count, usage.systemSeconds * 1000 / count,
                Double(usage.voluntaryContextSwitches + usage.involuntaryContextSwitches) / count)
    }

    /// The human-readable line of the report.
    static func cpuLine(_ usage: ResourceUsage, messages: Int) -> String {
        let cost = cpuPerMessage(usage, messages: messages)
        return String(format: "  daemon CPU        %.3f ms/msg (user %.3f, system %.3f; %.2f s in all), %.1f context switches/msg",
                      cost.total, cost.user, cost.system, usage.cpuSeconds, cost.switches)
    }

    /// The fields appended to the `RESULT postroom` line.
    static func cpuFields(_ usage: ResourceUsage, messages: Int) -> String {
        let cost = cpuPerMessage(usage, messages: messages)
        return String(format: " cpu_ms_per_msg=%.4f cpu_user_ms_per_msg=%.4f cpu_sys_ms_per_msg=%.4f csw_per_msg=%.2f",
                      cost.total, cost.user, cost.system, cost.switches)
    }
}
