#!/usr/bin/env python3
"""The independent side of DifferentialTests.swift: Python's `email` package.

For every file named on the command line (or every file in a directory named there), prints
one JSON line {"file", "sender", "recipients"} with the Pickup envelope by Postroom's
documented rules, computed from Python's parse:

- header fields are split by `email.parser.BytesParser` (policy.compat32 for the raw text);
- each address field value is unfolded and parsed with the RFC 5322 parser behind
  `email.policy.default` (`email._header_value_parser.get_address_list`);
- a usable mailbox is one Python parses as a mailbox with a local part and a domain;
- sender: the From: mailbox when all From: fields hold exactly one element, otherwise the
  single Sender: mailbox; none when neither holds;
- recipients: every usable To/Cc/Bcc mailbox, as `addr_spec`, domain lowercased (ASCII);
  none when there is no sender (Postroom makes such a file badmail and delivers nothing).
"""
import email
import email.policy
import json
import os
import sys
from email import _header_value_parser as parser


def values(message, name):
    out = []
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            # Bytes parsed with surrogateescape: give UTF-8 its characters back, keep other bytes as surrogates.
            raw = value.encode("ascii", "surrogateescape")
            text = raw.decode("utf-8", "surrogateescape")
            out.append("".join(text.splitlines()).strip())
    return out


def lower_ascii(text):
    return "".join(c.lower() if c.isascii() else c for c in text)


def mailboxes(value):
    """(usable addr_specs, element count) of one address-list value."""
    try:
        address_list, _rest = parser.get_address_list(value)
    except Exception:
        return [], 1
    usable = []
    count = 0
    for mailbox in address_list.all_mailboxes:
        count += 1
        if mailbox.token_type == "invalid-mailbox" or not mailbox.local_part or not mailbox.domain:
            continue
        try:
            spec = email.headerregistry.Address(username=mailbox.local_part, domain=mailbox.domain).addr_spec
        except Exception:
            continue
        local, _, domain = spec.rpartition("@")
        usable.append(local + "@" + lower_ascii(domain))
    return usable, count


def escaped(text):
    """Bytes that were not UTF-8 (surrogates here) as \\xNN, as Postroom shows them."""
    if text is None:
        return None
    return "".join("\\x%02X" % (ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def envelope(data):
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    authors, count = [], 0
    for value in values(message, "From"):
        found, elements = mailboxes(value)
        authors += found
        count += elements
    sender = None
    if count == 1 and len(authors) == 1:
        sender = authors[0]
    else:
        senders, sender_count = [], 0
        for value in values(message, "Sender"):
            found, elements = mailboxes(value)
            senders += found
            sender_count += elements
        if sender_count == 1 and len(senders) == 1:
            sender = senders[0]
    recipients = set()
    if sender is not None:
        for name in ("To", "Cc", "Bcc"):
            for value in values(message, name):
                recipients.update(mailboxes(value)[0])
    return sender, sorted(recipients)


def main():
    files = []
    for argument in sys.argv[1:]:
        if os.path.isdir(argument):
            files += [os.path.join(argument, n) for n in sorted(os.listdir(argument))
                      if n.endswith((".txt", ".eml")) and os.path.isfile(os.path.join(argument, n))]
        elif os.path.isfile(argument):
            files.append(argument)
    for path in files:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            sender, recipients = envelope(data)
        except Exception as error:  # report, never stop: the Swift side shows the file
            sender, recipients = None, []
            print(f"python could not read {path}: {error}", file=sys.stderr)
        print(json.dumps({"file": path, "sender": escaped(sender), "recipients": [escaped(r) for r in recipients]}))


if __name__ == "__main__":
    main()
