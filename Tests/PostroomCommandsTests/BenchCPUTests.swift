import Foundation
import PostroomSystem
import Testing
@testable import PostroomCommands

/// The bench's CPU figures: the child's own `wait4` usage, divided per message.
@Suite("bench CPU per message")
struct BenchCPUTests {
    @Test func aChildsCPUTimeAndExitStatusComeBackFromWait4() async throws {
        // A shell loop burns measurable user time; the usage must be the child's, not ours.
        let child = try ChildProcess.spawn(executable: "/bin/sh",
                                           arguments: ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3"],
                                           standardOutput: "/dev/null", standardError: "/dev/null")
        var exit = child.reapIfExited()
        let deadline = ContinuousClock.now + .seconds(120)
        while exit == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            exit = child.reapIfExited()
        }
        let ended = try #require(exit, "the child was not reaped")
        #expect(ended.exitCode == 3)
        #expect(ended.usage.userSeconds > 0.01)
        #expect(ended.usage.cpuSeconds >= ended.usage.userSeconds)
        #expect(ended.usage.peakResidentBytes > 0)
        #expect(ended.usage.voluntaryContextSwitches + ended.usage.involuntaryContextSwitches > 0)
        let fields = BenchRun.cpuFields(ended.usage, messages: 10)
        #expect(fields.contains(" cpu_ms_per_msg=") && fields.contains(" cpu_user_ms_per_msg=") && fields.contains(" cpu_sys_ms_per_msg="))
        let perMessage = BenchRun.cpuPerMessage(ended.usage, messages: 10)
        #expect(abs(perMessage.total - ended.usage.cpuSeconds * 100) < 1e-9)
    }
}
