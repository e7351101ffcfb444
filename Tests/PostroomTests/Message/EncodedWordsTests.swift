import Testing
@testable import Postroom

@Suite("EncodedWords")
struct EncodedWordsTests {
    @Test(arguments: [
        ("=?UTF-8?B?R3LDvMOfZQ==?=", "Grüße"),
        ("=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Z=C3=BCrich?=", "Grüße aus Zürich"),
        ("=?US-ASCII?Q?Keith_Moore?=", "Keith Moore"),
        ("=?us-ascii?B?S2VpdGg=?=", "Keith"),
        ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
        ("=?iso-8859-1?b?QW5kcukgUGlyYXJk?=", "André Pirard"),
        ("=?ISO-8859-2?Q?Pawe=B3_Kowalski?=", "Paweł Kowalski"),
        ("=?iso-8859-2?B?UGF3ZbM=?=", "Paweł"),
        ("=?ISO-8859-15?Q?Prix_:_10_=A4?=", "Prix : 10 €"),
        ("=?iso-8859-15?B?pA==?=", "€"),
        ("=?windows-1250?Q?=8Akoda?=", "Škoda"),
        ("=?windows-1250?B?imtvZGE=?=", "Škoda"),
        ("=?windows-1251?Q?=CF=F0=E8=E2=E5=F2?=", "Привет"),
        ("=?windows-1251?B?z/Do4uXy?=", "Привет"),
        ("=?windows-1252?Q?=93quoted=94_=80?=", "\u{201C}quoted\u{201D} €"),
        ("=?Windows-1252?B?k3F1b3RlZJQ=?=", "\u{201C}quoted\u{201D}"),
        ("=?ISO-8859-7?Q?=C1=E8=DE=ED=E1?=", "Αθήνα"),
        ("=?KOI8-R?B?8NLJ18XU?=", "Привет"),
        ("=?utf-8*en?Q?hello?=", "hello"),
    ])
    func decodesCharsetsAndEncodings(input: String, expected: String) {
        #expect(EncodedWords.decode(input) == expected)
    }

    @Test func latin1IsReadAsWindows1252() {
        #expect(EncodedWords.decode("=?iso-8859-1?Q?=93x=94_=81?=") == "\u{201C}x\u{201D} \u{81}")
    }

    @Test func dropsWhitespaceBetweenAdjacentWords() {
        #expect(EncodedWords.decode("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=") == "ab")
        #expect(EncodedWords.decode("=?ISO-8859-1?Q?a?=\r\n  =?ISO-8859-1?Q?b?=") == "ab")
        #expect(EncodedWords.decode("=?ISO-8859-1?Q?a?= b") == "a b")
        #expect(EncodedWords.decode("a =?ISO-8859-1?Q?b?=") == "a b")
        #expect(EncodedWords.decode("=?ISO-8859-1?Q?a_?= =?ISO-8859-1?Q?_b?=") == "a  b")
        #expect(EncodedWords.decode("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=") == "aé")
    }

    @Test func joinsMultibyteCharactersSplitAcrossWords() {
        // "ü" is C3 BC; split between two words.
        #expect(EncodedWords.decode("=?UTF-8?Q?=C3?= =?UTF-8?Q?=BC?=") == "ü")
    }

    @Test(arguments: [
        "=?UTF-8?X?abc?=",            // unknown encoding
        "=?unknown-charset?Q?abc?=",  // unknown charset
        "=?UTF-8?B?####?=",           // bad base64
        "=?UTF-8?B?QQ=Q?=",           // padding in the middle
        "=?UTF-8?Q?=ZZ?=",            // bad hex
        "=?UTF-8?Q?abc",              // unterminated
        "=?UTF-8?Q?a b?=",            // space inside
        "=??Q?abc?=",                 // empty charset
        "=?UTF-8?Q?=FF?=",            // invalid UTF-8
        "=?iso-8859-3?Q?=A5?=",       // unassigned byte
        "plain text = ? no words",
        "=?",
        "",
    ])
    func leavesMalformedWordsAsTheyAre(input: String) {
        #expect(EncodedWords.decode(input) == input)
    }

    @Test func keepsTextAroundMalformedWords() {
        #expect(EncodedWords.decode("x =?bogus?Q?a?= =?UTF-8?Q?b?= y") == "x =?bogus?Q?a?= b y")
    }
}
