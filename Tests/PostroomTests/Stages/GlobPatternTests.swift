import Testing
@testable import Postroom

@Suite("Glob patterns")
struct GlobPatternTests {
    @Test(arguments: [
        ("*@spam.example", "bad@spam.example", true),
        ("*@spam.example", "BAD@SPAM.Example", true),
        ("*@spam.example", "bad@spam.example.org", false),
        ("*@spam.example", "bad@notspam.example", false),
        ("*urgent*", "This is URGENT now", true),
        ("*urgent*", "urgent", true),
        ("*urgent*", "urgen t", false),
        ("yes", "yes", true),
        ("yes", "Yes", true),
        ("yes", "yes please", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*", "", true),
        ("*", "<>", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("**x", "x", true),
        ("*ab", "aab", true),
        ("é*", "Éclair", true),
    ])
    func matches(pattern: String, text: String, expected: Bool) {
        #expect(GlobPattern(pattern).matches(text) == expected, "\(pattern) ~ \(text)")
    }

    @Test func pathologicalPatternStaysFast() {
        // Exponential backtracking would never finish this; the single-star backtrack does it at once.
        let text = String(repeating: "a", count: 5_000)
        let pattern = GlobPattern(String(repeating: "*a", count: 30) + "b")
        let start = ContinuousClock.now
        #expect(!pattern.matches(text))
        #expect(ContinuousClock.now - start < .seconds(30), "exponential backtracking would take years; 30 s leaves room for a starved test runner")
    }
}
