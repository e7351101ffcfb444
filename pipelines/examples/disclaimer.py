#!/usr/bin/python3
"""A `command` stage filter: appends a disclaimer footer, respecting the MIME structure.

    { stage: "command", name: "disclaimer", mode: "filter", command: ["examples/disclaimer.py"] }

The footer is the file named as the first argument (absolute, or relative to the spool, the
working directory of a command stage), else disclaimer.txt beside this script, else a default.

Reads the message on standard input and writes it, with the footer, to standard output:
- text/plain (or no Content-Type) in 7bit, 8bit or no transfer encoding: the footer is
  appended to the body;
- multipart/mixed: the footer becomes a new text/plain part before the closing boundary,
  so attachments and the original parts are untouched;
- anything else (HTML only, base64 or quoted-printable text, multipart/alternative, signed
  or encrypted mail): the message passes unchanged, because appending would corrupt it or
  break its signature. Put this stage before DKIM signing.
A message that already has `X-Disclaimer: added` passes unchanged, so a message that comes
round again (a retry, a forward through Postroom) never gets two footers.

Only the body and one `X-Disclaimer` field change; every other header byte stays as it was,
and the message's own line ending (CRLF or LF) is kept. Exit 0 always, except 75 (try
again later) when the footer file cannot be read.
"""
import email.parser
import email.policy
import os
import re
import sys

DEFAULT = "This message was sent through Postroom. If you are not the intended recipient, please delete it."


def main():
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "disclaimer.txt")
    path = sys.argv[1] if len(sys.argv) > 1 else (beside if os.path.exists(beside) else None)
    try:
        footer = open(path, encoding="utf-8").read().strip() if path else DEFAULT
    except OSError as error:
        print(f"4.3.0 cannot read the disclaimer text: {error}", file=sys.stderr)
        return 75
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(add_disclaimer(data, footer))
    return 0


def add_disclaimer(data: bytes, footer: str) -> bytes:
    eol = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
    split = re.search(rb"\r?\n\r?\n", data)
    if split is None:
        return data
    head, body = data[: split.start()], data[split.end():]
    header = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + eol + eol)
    if (header.get("X-Disclaimer") or "").strip().lower() == "added":
        return data
    content_type = header.get_content_type()
    encoding = (header.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    text = footer.replace("\r\n", "\n").replace("\n", eol.decode()).encode("utf-8")
    if content_type == "text/plain" and encoding in ("7bit", "8bit", ""):
        charset = (header.get_content_charset() or "us-ascii").lower()
        if not text.isascii() and charset not in ("utf-8", "utf8"):
            return data  # the footer cannot be written in this part's charset
        if body and not body.endswith(eol):
            body += eol
        body += eol + b"-- " + eol + text + eol
    elif content_type == "multipart/mixed" and header.get_boundary():
        closing = re.compile(rb"(^|\r?\n)--" + re.escape(header.get_boundary().encode()) + rb"--[ \t]*(\r?\n|$)")
        match = None
        for match in closing.finditer(body):
            pass
        if match is None:
            return data  # no closing boundary: a truncated message stays as it was
        part = (eol + b"--" + header.get_boundary().encode() + eol
                + b"Content-Type: text/plain; charset=utf-8" + eol
                + b"Content-Transfer-Encoding: 8bit" + eol
                + b"Content-Disposition: inline" + eol + eol + text + eol)
        body = body[: match.start()] + part + body[match.start():]
    else:
        return data
    return head + eol + b"X-Disclaimer: added" + eol + eol + body


if __name__ == "__main__":
    sys.exit(main())
