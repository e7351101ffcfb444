#!/usr/bin/env python3
"""Writes the submission corpus next to this script.

Each file is named <source>-<expected>-<description>.eml, where <source> is pickup or
replay and <expected> is accept, badmail or report-<status> (e.g. report-5.3.4).
CorpusTests.swift validates every file with the default SubmissionLimits and checks
the verdict against the name. Re-run after editing: `python3 generate.py`.

The folder is hidden (.corpus) because SwiftPM warns about unhandled files in a test
target and the package manifest has no exclude/resources entry for fixtures.
"""
import os
import glob

HERE = os.path.dirname(os.path.abspath(__file__))
cases = {}


def add(name, text, crlf=True, raw=None):
    data = raw if raw is not None else text.replace("\n", "\r\n" if crlf else "\n").encode("utf-8")
    assert name not in cases, name
    cases[name] = data


def both(name, text):
    """The same message with CRLF and with LF line endings."""
    add(name + "-crlf", text, crlf=True)
    add(name + "-lf", text, crlf=False)


DATE = "Date: Tue, 17 Nov 2026 08:15:00 +0100\n"

# --- Pickup: accepted shapes -------------------------------------------------
both("pickup-accept-minimal", "From: alice@example.com\nTo: bob@example.com\nSubject: Hello\n\nHi Bob.\n")
both("pickup-accept-display-names", 'From: "Smith, Alice" <alice@example.com>\nTo: Bob Jones <bob@example.com>, "Carol (Ops)" <carol@example.com>\nSubject: Meeting\n' + DATE + "\nSee you.\n")
both("pickup-accept-outlook-multipart", """From: Alice Smith <alice@example.com>
To: bob@example.com
Cc: carol@example.com
Subject: Quarterly report
Thread-Topic: Quarterly report
Thread-Index: AdlBn1J2k3uTzVqJS0m5xG6vV3Yx9Q==
Date: Tue, 17 Nov 2026 07:15:00 +0000
Message-ID: <DM6PR11MB1234ABCD@DM6PR11MB1234.namprd11.prod.outlook.com>
Accept-Language: en-US
Content-Language: en-US
X-MS-Has-Attach: yes
MIME-Version: 1.0
Content-Type: multipart/mixed;
\tboundary="_004_DM6PR11MB1234_"

--_004_DM6PR11MB1234_
Content-Type: text/plain; charset="us-ascii"

Please find the report attached.

--_004_DM6PR11MB1234_
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+
--_004_DM6PR11MB1234_--
""")
both("pickup-accept-thunderbird", """Message-ID: <5f3c1a2b-7d4e-4f6a-9b8c-1d2e3f4a5b6c@example.com>
Date: Tue, 17 Nov 2026 09:00:00 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: de-DE
To: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
From: =?UTF-8?B?QW5kcsOpIER1cG9udA==?= <andre@example.fr>
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Z=C3=BCrich?=
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Grüße!
""")
both("pickup-accept-cron", "From: root@host.example.com (Cron Daemon)\nTo: root@host.example.com\nSubject: Cron <root@host> /usr/local/bin/backup\nContent-Type: text/plain; charset=UTF-8\nX-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\n\nbackup done\n")
both("pickup-accept-mailing-list", """From: Dev Person <dev@lists.example.org>
To: dev-list@lists.example.org
Subject: [dev] Re: Patch v2
In-Reply-To: <abc@x.example.org>
References: <aaa@x.example.org>
 <bbb@x.example.org>
 <abc@x.example.org>
List-Id: Developers <dev-list.lists.example.org>
List-Unsubscribe: <mailto:dev-list-leave@lists.example.org>
Precedence: list
""" + DATE + "\nLooks good.\n")
both("pickup-accept-group-syntax", "From: alice@example.com\nTo: project-team: bob@example.com, carol@example.com;\nSubject: team\n\nx\n")
both("pickup-accept-bcc-only", "From: alice@example.com\nBcc: bob@example.com, carol@example.com\nSubject: secret\n\nx\n")
both("pickup-accept-bcc-and-to", "From: alice@example.com\nTo: bob@example.com\nBcc: audit@example.com\nSubject: cc audit\n\nx\n")
both("pickup-accept-received-and-resent", """Received: from mail.example.net (mail.example.net [192.0.2.1])
\tby mx.example.com with ESMTPS id 12345
\tfor <bob@example.com>; Tue, 17 Nov 2026 08:00:00 +0000
Received: from localhost by mail.example.net; Tue, 17 Nov 2026 07:59:00 +0000
Resent-From: forwarder@example.com
Resent-To: bob@example.com
Resent-Date: Tue, 17 Nov 2026 08:01:00 +0000
Resent-Message-ID: <resent1@example.com>
From: alice@example.net
To: bob@example.com
Subject: forwarded
""" + DATE + "\nx\n")
both("pickup-accept-sender-with-several-from", "From: alice@example.com, bob@example.com\nSender: secretary@example.com\nTo: carol@example.com\nSubject: joint\n\nx\n")
both("pickup-accept-sender-only", "Sender: robot@example.com\nTo: ops@example.com\nSubject: alert\n\nx\n")
both("pickup-accept-missing-date-and-id", "From: alice@example.com\nTo: bob@example.com\n\nno date, no id\n")
both("pickup-accept-bad-date", "From: alice@example.com\nTo: bob@example.com\nDate: sometime last week\nMessage-ID: <1@example.com>\n\nx\n")
both("pickup-accept-empty-message-id", "From: alice@example.com\nTo: bob@example.com\nMessage-ID:\n\nx\n")
both("pickup-accept-obsolete-route", "From: Mary Smith <@node.test,@node2.test:mary@example.net>\nTo: <@relay.example.com:bob@example.com>\nSubject: obs\n\nx\n")
both("pickup-accept-comments", "From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\nTo: bob@example.com (Bob)\nSubject: comments\n\nx\n")
both("pickup-accept-duplicates", "From: alice@example.com\nTo: bob@example.com, BOB@EXAMPLE.COM, bob@Example.Com\nCc: bob@example.com\nSubject: dup\n\nx\n")
both("pickup-accept-header-only-no-blank", "From: alice@example.com\nTo: bob@example.com\nSubject: no body")
both("pickup-accept-empty-list-elements", "From: alice@example.com\nTo: ,, bob@example.com,, , not-an-address, carol@example.com,\n\nx\n")
both("pickup-accept-x-envelope-lines-removed", "X-Sender: <spoof@evil.example>\nX-Receiver: <victim@example.com>\nFrom: alice@example.com\nTo: bob@example.com\n\nPickup ignores and removes replay envelope lines.\n")
both("pickup-accept-exactly-100-recipients", "From: alice@example.com\nTo: " + ", ".join("user%d@example.com" % i for i in range(100)) + "\n\nx\n")
both("pickup-accept-folded-to", "From: alice@example.com\nTo: bob@example.com,\n carol@example.com,\n\tdave@example.com\nSubject: folded\n\nx\n")
both("pickup-accept-whitespace-before-colon", "From : alice@example.com\nTo : bob@example.com\nSubject : old style\n\nx\n")
both("pickup-accept-encoded-latin1", "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.be>\nTo: =?ISO-8859-15?Q?Fran=E7ois?= <francois@example.fr>\nSubject: =?windows-1252?Q?=93Prix=94_10_=80?=\n\nx\n")
both("pickup-accept-idn", "From: Jörg <jörg@bücher.example>\nTo: 山田 <yamada@例え.jp>\nSubject: UTF-8 everywhere\n\nx\n")
both("pickup-accept-domain-literal", "From: postmaster@[192.0.2.7]\nTo: bob@example.com\n\nx\n")
both("pickup-accept-quoted-local", 'From: "john doe"@example.com\nTo: "a,b"@example.com\n\nx\n')
both("pickup-accept-imcea-fax", "From: alice@example.com\nTo: IMCEAFAX-+2B15551234@example.com\nSubject: fax\n\npage 1\n")
both("pickup-accept-body-bare-cr", "From: alice@example.com\nTo: bob@example.com\n\nbody has a bare \r carriage return\n")
both("pickup-accept-long-header-line", "From: alice@example.com\nTo: bob@example.com\nX-Long: " + "x" * 5000 + "\n\nx\n")
add("pickup-accept-mixed-line-endings", "", raw=b"From: alice@example.com\r\nTo: bob@example.com\nSubject: mixed\r\n\r\nx\n")
add("pickup-accept-mbox-from-line", "From MAILER-DAEMON Tue Nov 17 08:15:00 2026\nFrom: alice@example.com\nTo: bob@example.com\n\nx\n", crlf=False)
add("pickup-accept-bom", "", raw=b"\xef\xbb\xbfFrom: alice@example.com\r\nTo: bob@example.com\r\n\r\nx\r\n")
add("pickup-accept-latin1-8bit-header", "", raw=b"From: Andr\xe9 <andre@example.fr>\r\nTo: bob@example.com\r\nSubject: caf\xe9\r\n\r\nx\r\n")
add("pickup-accept-8bit-body", "", raw=b"From: alice@example.com\nTo: bob@example.com\n\n\x00\x01\xff\xfe binary body\n")
add("pickup-accept-bom-and-mbox", "", raw=b"\xef\xbb\xbfFrom someone Tue Nov 17 08:15:00 2026\nFrom: alice@example.com\nTo: bob@example.com\n\nx\n")

# --- Pickup: reports -----------------------------------------------------------
both("pickup-report-5.1.3-no-recipients", "From: alice@example.com\nSubject: to nobody\n\nx\n")
both("pickup-report-5.1.3-undisclosed-only", "From: alice@example.com\nTo: undisclosed-recipients:;\n\nx\n")
both("pickup-report-5.1.3-junk-recipients", "From: alice@example.com\nTo: Bob Jones, someone at example dot com\nCc: @@@\n\nx\n")
both("pickup-report-5.5.3-101-recipients", "From: alice@example.com\nTo: " + ", ".join("user%d@example.com" % i for i in range(60)) + "\nCc: " + ", ".join("cc%d@example.com" % i for i in range(41)) + "\n\nx\n")
both("pickup-report-5.5.3-bcc-counts", "From: alice@example.com\nBcc: " + ", ".join("user%d@example.com" % i for i in range(150)) + "\n\nx\n")
add("pickup-report-5.3.4-header-too-large", "From: alice@example.com\nTo: bob@example.com\n" + "".join("X-Filler-%d: %s\n" % (i, "y" * 90) for i in range(720)) + "\nx\n")
both("pickup-report-5.6.0-bare-cr-in-header", "From: alice@example.com\nTo: bob@example.com\nSubject: smuggle\rBcc: evil@example.net\n\nx\n")
# A header without its blank line: the body starts at the first line that is not a field, as in
# Python's email and Postfix (issue 11) -- unless a field-like line follows, which would show
# header fields (a Bcc, say) as body text: that stays a 5.6.0 report.
both("pickup-accept-not-a-header-line", "From: alice@example.com\nTo: bob@example.com\nthis line is not a header\n\nx\n")
both("pickup-report-5.6.0-not-a-header-line-then-bcc", "From: alice@example.com\nTo: bob@example.com\nX-Broken header line\nBcc: secret@example.net\n\nx\n")
# RFC 5322 obs-utext: a NUL in an unstructured field is kept, not refused (issue 11).
add("pickup-accept-nul-in-subject", "", raw=b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: a\x00b\r\n\r\nx")
# A NUL inside an address makes that element unusable; with no other recipient: 5.1.3.
add("pickup-report-5.1.3-nul-in-address", "", raw=b"From: alice@example.com\r\nTo: bo\x00b@example.com\r\n\r\nx")
# A first line of only white space carries nothing; the header after it is read (issue 11).
both("pickup-accept-whitespace-first-line", " \t \nFrom: alice@example.com\nTo: bob@example.com\n\nx\n")
both("pickup-accept-body-without-blank-line", "From: alice@example.com\nTo: bob@example.com\nHello Bob, I forgot the blank line.\n")

# --- Pickup: badmail -----------------------------------------------------------
both("pickup-badmail-no-from", "To: bob@example.com\nSubject: anonymous\n\nx\n")
both("pickup-badmail-from-without-address", "From: Alice Smith\nTo: bob@example.com\n\nx\n")
both("pickup-badmail-several-from-no-sender", "From: alice@example.com, carol@example.com\nTo: bob@example.com\n\nx\n")
both("pickup-badmail-several-from-several-sender", "From: alice@example.com, carol@example.com\nSender: a@example.com, b@example.com\nTo: bob@example.com\n\nx\n")
both("pickup-badmail-no-sender-no-recipient", "Subject: nothing\n\nx\n")
both("pickup-badmail-bare-cr-before-from", "Subject: x\rFrom: alice@example.com\nTo: bob@example.com\n\nx\n")
both("pickup-badmail-starts-with-blank-line", "\nFrom: alice@example.com\nTo: bob@example.com\n")
both("pickup-badmail-continuation-first", " From: alice@example.com\nTo: bob@example.com\n\nx\n")
both("pickup-badmail-plain-text", "Dear Bob,\nthis is just a letter without any header.\n")
add("pickup-badmail-empty", "", raw=b"")
add("pickup-badmail-png", "", raw=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")
add("pickup-badmail-elf", "", raw=b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00")
add("pickup-badmail-only-bom", "", raw=b"\xef\xbb\xbf")
add("pickup-badmail-utf16", "", raw="From: alice@example.com\r\nTo: bob@example.com\r\n\r\n".encode("utf-16"))
both("pickup-badmail-null-from", "From: <>\nTo: bob@example.com\n\nx\n")

# --- Replay: accepted ----------------------------------------------------------
both("replay-accept-documented-example", """X-Sender: <bob@fabrikam.com> BODY=7bit RET=HDRS ENVID=12345ABCD auth=<someAuth>
X-Receiver: <mary@contoso.com> NOTIFY=NEVER ORcpt=rfc822;mary@contoso.com
From: bob@fabrikam.com
To: mary@contoso.com
Subject: replay

x
""")
both("replay-accept-exchange-export", """X-CreatedBy: MSExchange15
X-Sender: <alice@example.com>
X-Receiver: <bob@example.com> NOTIFY=FAILURE,DELAY
X-Receiver: <carol@example.com>
X-ExtendedMessageProps: BQAVABYAAgAAAAUAFAARAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
X-HeloDomain: EXCH01.corp.example.com
X-Source: SMTP:Default EXCH01
X-SourceIPAddress: 10.0.0.5
X-EndOfInjectedXHeaders: 412
Received: from EXCH01.corp.example.com by EXCH02; Tue, 17 Nov 2026 08:00:00 +0000
From: Alice <alice@example.com>
To: Bob <bob@example.com>
Subject: exported
""" + DATE + """Message-ID: <export1@example.com>

x
""")
both("replay-accept-fax", "X-Sender: <alice@example.com>\nX-Receiver: FAX:+15551234\nX-Receiver: <FAX:+15559876> NOTIFY=FAILURE\nSubject: fax\n\npage\n")
both("replay-accept-x400", "X-Sender: <alice@example.com>\nX-Receiver: <X400:c=US;a= ;p=Org;o=Exchange;s=Smith;>\nSubject: x400\n\nx\n")
both("replay-accept-null-sender", "X-Sender: <>\nX-Receiver: <alice@example.com>\nFrom: MAILER-DAEMON@example.net\nSubject: Undeliverable\n\nbounce\n")
both("replay-accept-unbracketed", "X-Sender: alice@example.com\nX-Receiver: bob@example.com NOTIFY=NEVER\nSubject: plain\n\nx\n")
both("replay-accept-to-ignored", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nFrom: someone@else.example\nTo: " + ", ".join("u%d@else.example" % i for i in range(200)) + "\n\nrecipient limit does not apply\n")
both("replay-accept-many-receivers", "X-Sender: <alice@example.com>\n" + "".join("X-Receiver: <r%d@example.com>\n" % i for i in range(250)) + "Subject: many\n\nx\n")
both("replay-accept-bcc-removed", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nBcc: hidden@example.com\nSubject: bcc\n\nx\n")
both("replay-accept-x-mailer-in-block", "X-Mailer: Producer 2.1\nX-Sender: <alice@example.com>\nX-Priority: 1\nX-Receiver: <bob@example.com>\nSubject: x\n\nx\n")
both("replay-accept-envelope-only", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\n\nbody with no ordinary header\n")
both("replay-accept-smtp-prefix", "X-Sender: <SMTP:alice@example.com>\nX-Receiver: <SMTP:Bob@Example.COM>\nSubject: x\n\nx\n")
both("replay-accept-received-kept", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nReceived: from a by b; Tue, 17 Nov 2026 08:00:00 +0000\nResent-From: c@example.com\nSubject: x\n\nx\n")
add("replay-accept-header-only", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nSubject: end", crlf=True)
add("replay-accept-huge-header", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\n" + "".join("X-Filler-%d: %s\n" % (i, "y" * 90) for i in range(720)) + "Subject: big\n\nx\n")

# --- Replay: reports -----------------------------------------------------------
both("replay-report-5.1.3-no-receiver", "X-Sender: <alice@example.com>\nFrom: alice@example.com\nTo: bob@example.com\n\nx\n")
both("replay-report-5.1.3-bad-receiver", "X-Sender: <alice@example.com>\nX-Receiver: not an address at all\nSubject: x\n\nx\n")
both("replay-report-5.1.3-null-receiver", "X-Sender: <alice@example.com>\nX-Receiver: <>\nSubject: x\n\nx\n")
both("replay-report-5.6.0-receiver-after-header", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nFrom: alice@example.com\nX-Receiver: <evil@example.net>\n\nx\n")
both("replay-report-5.6.0-bare-cr", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nSubject: a\rb\n\nx\n")
both("replay-accept-not-a-header", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nnot a header\n\nx\n")
both("replay-report-5.6.0-not-a-header-then-field", "X-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\nnot a header\nSubject: x\n\nx\n")

# --- Replay: badmail -----------------------------------------------------------
both("replay-badmail-pickup-style", "From: alice@example.com\nTo: bob@example.com\nSubject: wrong folder\n\nx\n")
both("replay-badmail-two-senders", "X-Sender: <alice@example.com>\nX-Sender: <carol@example.com>\nX-Receiver: <bob@example.com>\n\nx\n")
both("replay-badmail-sender-after-header", "From: alice@example.com\nX-Sender: <alice@example.com>\nX-Receiver: <bob@example.com>\n\nx\n")
both("replay-badmail-invalid-sender", "X-Sender: alice at example\nX-Receiver: <bob@example.com>\n\nx\n")
both("replay-badmail-null-sender-no-receiver", "X-Sender: <>\nSubject: x\n\nx\n")
both("replay-badmail-null-sender-bare-cr", "X-Sender: <>\nX-Receiver: <bob@example.com>\nSubject: a\rb\n\nx\n")
both("replay-badmail-empty-sender", "X-Sender:\nX-Receiver: <bob@example.com>\n\nx\n")
add("replay-badmail-empty", "", raw=b"")
add("replay-badmail-binary", "", raw=bytes(range(256)))


def main():
    for old in glob.glob(os.path.join(HERE, "*.eml")):
        os.remove(old)
    for name, data in sorted(cases.items()):
        with open(os.path.join(HERE, name + ".eml"), "wb") as handle:
            handle.write(data)
    print("wrote %d files" % len(cases))


if __name__ == "__main__":
    main()
