#!/usr/bin/env python3
"""Writes messages/*.eml: the hand-written half of the differential corpus (issue 11).

Each message probes one address or header shape; DifferentialTests.swift compares the
Pickup envelope Postroom derives with the one envelope.py derives from Python's `email`.
Re-run after editing: `python3 generate.py`.
"""
import glob
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "messages")
cases = {}


def add(name, header, body=b"Hello.\n"):
    data = header if isinstance(header, bytes) else header.encode("utf-8")
    assert name not in cases, name
    cases[name] = data + b"\n" + body


F = "From: Alice <alice@example.com>\n"

# Plain shapes real producers write.
add("plain", F + "To: bob@example.com\nSubject: hi\n")
add("display-names", F + 'To: "Smith, Bob" <bob@example.com>, Carol Jones <carol@example.com>\n')
add("cc-bcc", F + "To: bob@example.com\nCc: carol@example.com\nBcc: dave@example.com\n")
add("domain-case", F + "To: Bob@Example.COM\n")
add("comments", F + "To: bob@example.com (Bob), (lead) carol@example.com\n")
add("group", F + "To: Team: bob@example.com, carol@example.com;, dave@example.com\n")
add("empty-group", F + "To: undisclosed-recipients:;\nBcc: bob@example.com\n")
add("empty-elements", F + "To: , bob@example.com,, carol@example.com ,\n")
add("folded-list", F + "To: bob@example.com,\n carol@example.com,\n\tdave@example.com\n")
add("crlf", (F + "To: bob@example.com\n").replace("\n", "\r\n"))
add("encoded-display-name", F + "To: =?UTF-8?B?5bGx55Sw?= <yamada@example.jp>\n")
add("utf8-address", F + "To: Jörg <jörg@bücher.example>\n")
add("duplicate-recipients", F + "To: bob@example.com, bob@EXAMPLE.com\nCc: bob@example.com\n")
add("multiple-to-fields", F + "To: bob@example.com\nTo: carol@example.com\n")

# RFC 5322 section 4 obsolete syntax.
add("obs-cfws-around-dots", F + "To: john . doe @ example . com\n")
add("obs-comment-in-local", F + "To: john(x).doe@example.com\n")
add("obs-quoted-word", F + 'To: "john".doe@example.com\n')
add("obs-quoted-spaces", F + 'To: "john doe"@example.com\n')
add("obs-route", F + "To: Mary <@a.example,@b.example:mary@example.net>\n")
add("obs-whitespace-before-colon", "From : alice@example.com\nTo : bob@example.com\n")
add("obs-phrase-dots", "From: Joe Q. Public <jqp@example.com>\nTo: bob@example.com\n")
add("domain-literal", F + "To: postmaster@[192.0.2.1]\n")

# Class 1: addresses that must never be invented.
add("glued-from", "From: Mary Ann Smith mas@example.org\nTo: bob@example.com\n")
add("glued-to", F + "To: Mary Ann Smith mas@example.org, bob@example.com\n")
add("words-in-angle", F + "To: <a@example.org plus words>, bob@example.com\n")
add("text-after-angle", F + "To: <bob@example.com> carol@example.com\n")
add("two-at", F + "To: a@b@example.com, bob@example.com\n")
add("dots-in-domain", F + "To: a@example..com, bob@example.com\n")
add("unclosed-angle", F + "To: Bob <bob@example.com\n")

# Class 2: elements to report.
add("bare-local-part", F + "Cc: bob@example.com, jsmith\n")
add("name-without-address", F + "To: Bob Jones, carol@example.com\n")
add("unquoted-comma-name", F + "To: Smith, Bob <bob@example.com>\n")
add("empty-angle", F + "To: <>, bob@example.com\n")
add("no-valid-recipient", F + "To: jsmith\n")

# Class 3: bytes that are not UTF-8.
add("latin1-local", F.encode() + b"To: j\xf6rg@example.com, bob@example.com\n")
add("latin1-from", b"From: j\xf6rg@example.com\nTo: bob@example.com\n")
add("latin1-display-name", F.encode() + b"To: J\xf6rg <joerg@example.com>\n")

# Class 4: tolerated oddities.
add("nul-in-subject", F.encode() + b"To: bob@example.com\nSubject: a\x00b\n")
add("whitespace-first-line", " \n" + F + "To: bob@example.com\n")
add("bom", b"\xef\xbb\xbf" + F.encode() + b"To: bob@example.com\n")
add("mbox-from-line", "From alice@example.com Mon Nov 30 09:00:00 2026\n" + F + "To: bob@example.com\n")

# Sender rules.
add("two-from-no-sender", "From: a@example.com, b@example.com\nTo: bob@example.com\n")
add("two-from-one-sender", "From: a@example.com, b@example.com\nSender: s@example.com\nTo: bob@example.com\n")
add("two-from-two-sender", "From: a@example.com, b@example.com\nSender: s@example.com, t@example.com\nTo: bob@example.com\n")
add("two-from-fields", "From: a@example.com\nFrom: b@example.com\nTo: bob@example.com\n")
add("one-from-two-sender", "From: a@example.com\nSender: s@example.com, t@example.com\nTo: bob@example.com\n")
add("sender-only", "Sender: s@example.com\nTo: bob@example.com\n")
add("no-from", "To: bob@example.com\n")

# Neighbours: more shapes from real mail and from RFC 5322's examples.
add("comment-with-angle", F + "To: bob@example.com (Bob <the builder>)\n")
add("quoted-comma-name", F + 'To: "Quoted, Name" <bob@example.com>, carol@example.com\n')
add("trailing-dot-domain", F + "To: bob@example.com., carol@example.com\n")
add("leading-dot-local", F + "To: .bob@example.com, carol@example.com\n")
add("trailing-dot-local", F + "To: bob.@example.com, carol@example.com\n")
add("double-dot-local", F + "To: bob..jones@example.com, carol@example.com\n")
add("underscore-domain", F + "To: bob@my_host.example.com\n")
add("encoded-word-local", F + "To: =?utf-8?q?bob?=@example.com, carol@example.com\n")
add("ipv6-literal", F + "To: bob@[IPv6:2001:db8::1]\n")
add("empty-quoted-local", F + 'To: ""@example.com, carol@example.com\n')
add("semicolon-end", F + "To: bob@example.com;\n")
add("empty-named-group", F + "To: group: ;\nCc: bob@example.com\n")
add("group-then-more", F + "To: <bob@example.com>, Team: carol@example.com;, dave@example.com\n")
add("folded-comment", F + "To: bob@example.com\n\t(the builder)\n")
add("escaped-backslash-local", F + 'To: "a\\\\b"@example.com\n')
add("space-before-at", F + "To: bob @example.com\n")
add("space-after-at", F + "To: bob@ example.com\n")
add("named-empty-angle", F + "Cc: Nobody <>, bob@example.com\n")
add("comment-after-angle", F + "To: <bob@example.com> (Bob)\n")
add("mailto-prefix", F + "To: mailto:bob@example.com\n")
add("address-as-name", F + "To: bob@example.com <carol@example.com>\n")
add("double-close-angle", F + "To: Bob <bob@example.com>>, carol@example.com\n")
add("unterminated-quote", F + 'To: carol@example.com, "Bob <bob@example.com>\n')
add("unterminated-comment", F + "To: bob@example.com, (carol@example.com\n")
add("single-label-domain", F + "To: bob@localhost\n")
add("numeric-domain", F + "To: bob@123.45\n")
add("quoted-plain-local", F + 'To: "bob"@example.com\n')
add("comma-on-continuation", F + "To: bob@example.com\n  , carol@example.com\n")
add("from-comment-name", "From: alice@example.com (Alice)\nTo: bob@example.com\n")
add("from-angle-only", "From: <alice@example.com>\nTo: bob@example.com\n")
add("from-group", "From: Team: alice@example.com;\nTo: bob@example.com\n")
add("from-empty", "From:\nSender: s@example.com\nTo: bob@example.com\n")
add("from-bare-local", "From: alice\nTo: bob@example.com\n")
add("sender-group", "From: a@example.com, b@example.com\nSender: Desk: s@example.com;\nTo: bob@example.com\n")
add("utf8-display-name-raw", F + "To: Jörg Müller <joerg@example.com>\n")
add("utf8-quoted-local", F + 'To: "jörg müller"@example.com\n')
add("tab-folded-address", F + "To: bob\n\t@example.com\n")
add("route-without-colon", F + "To: <@a.example,bob@example.com>, carol@example.com\n")
add("plus-tag", F + "To: bob+tag@example.com\n")
add("atext-specials", F + "To: !#$%&'*+-/=?^_`{|}~@example.com\n")
add("long-list", F + "To: " + ", ".join(f"user{i}@example.com" for i in range(60)) + "\n")
add("resent-ignored", F + "To: bob@example.com\nResent-To: carol@example.com\n")
add("cr-lf-mixed", (F + "To: bob@example.com\r\nCc: carol@example.com\n"))

add("whitespace-line-as-separator", F + "To: bob@example.com\n \nThe body follows a line of one space.\n", body=b"")
add("header-only-no-body", (F + "To: bob@example.com\n").encode(), body=b"")

if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    for old in glob.glob(os.path.join(HERE, "*.eml")):
        os.remove(old)
    for name, data in cases.items():
        with open(os.path.join(HERE, name + ".eml"), "wb") as handle:
            handle.write(data)
    print(f"wrote {len(cases)} files")
