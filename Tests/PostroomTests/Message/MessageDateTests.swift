import Foundation
import Testing
@testable import Postroom

@Suite("MessageDate")
struct MessageDateTests {
    @Test func formatsInUTC() {
        #expect(MessageDate.format(MessageTestSupport.now) == "Mon, 23 Nov 2026 09:36:18 +0000")
        #expect(MessageDate.format(Date(timeIntervalSince1970: 0)) == "Thu, 1 Jan 1970 00:00:00 +0000")
        #expect(MessageDate.format(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
    }

    @Test func extremeDatesDoNotTrap() {
        #expect(MessageDate.format(.distantFuture) == "Mon, 1 Jan 4001 00:00:00 +0000")
        #expect(MessageDate.format(Date(timeIntervalSince1970: 1e15)).hasSuffix("9999 23:59:59 +0000"))
        #expect(MessageDate.format(Date(timeIntervalSince1970: .infinity)) == "Thu, 1 Jan 1970 00:00:00 +0000")
        #expect(MessageDate.format(Date(timeIntervalSince1970: -1e300)).contains(" 1 Jan 1 "))
    }

    @Test func parsesModernAndObsoleteForms() {
        let reference = Date(timeIntervalSince1970: 1_795_426_578)
        #expect(MessageDate.parse("Mon, 23 Nov 2026 09:36:18 +0000") == reference)
        #expect(MessageDate.parse("23 Nov 2026 10:36:18 +0100") == reference)
        #expect(MessageDate.parse("Mon, 23 Nov 2026 04:36:18 EST") == reference)
        #expect(MessageDate.parse("Mon, 23 Nov 2026 09:36:18 GMT (Coordinated)") == reference)
        #expect(MessageDate.parse("mon, 23 nov 26 09:36:18 +0000") == reference)
        #expect(MessageDate.parse("Mon, 23 Nov 2026 09:36 +0000") == Date(timeIntervalSince1970: 1_795_426_560))
        #expect(MessageDate.parse("Fri, 21 Nov 1997 09:55:06 -0600") != nil)
    }

    @Test(arguments: ["", "yesterday", "Mon, 32 Nov 2026 09:36:18 +0000", "Mon, 30 Feb 2026 09:00:00 +0000",
                      "Mon, 23 Foo 2026 09:36:18 +0000", "Mon, 23 Nov 2026 25:00:00 +0000",
                      "Mon, 23 Nov 2026 09:36:18 +99999", "2026-11-23T09:36:18Z"])
    func rejectsNonDates(text: String) {
        #expect(MessageDate.parse(text) == nil)
    }

    @Test func roundTrips() {
        var generator = MessageTestSupport.SplitMix64(seed: 7)
        for _ in 0..<500 {
            let seconds = Double(generator.next() % 4_000_000_000)
            let date = Date(timeIntervalSince1970: seconds)
            #expect(MessageDate.parse(MessageDate.format(date)) == date)
        }
    }
}
