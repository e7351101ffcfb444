/// IMCEA encapsulation: carrying a non-SMTP address (`FAX:+15551234`) inside an SMTP one
/// (`IMCEAFAX-+2B15551234@example.com`), exactly as Exchange writes it.
///
/// Encoding of the address (reference/exchange-transport.md §6, [RR]):
/// - ASCII letters, digits, `=` and `-` are kept;
/// - `/` becomes `_`;
/// - every other US-ASCII character becomes `+` and two upper-case hex digits (`+` → `+2B`,
///   `@` → `+40`, `.` → `+2E`, space → `+20`).
///
/// Exchange does not say what it does with non-ASCII characters. Postroom encodes each UTF-8
/// byte as `+HH`, so any Unicode address round-trips; the decoder accepts only bytes that form
/// valid UTF-8.
///
/// Decoding accepts hex digits in either case, turns `_` back into `/`, and refuses anything the
/// encoder could not have produced (a literal `.`, a dangling `+`), an empty type or address,
/// a local part over 315 characters and a whole address over 571 characters: an address that
/// fails these checks is not an IMCEA address, so the caller treats it as an ordinary one.
public enum IMCEA {
    /// The longest local part (`IMCEA<type>-<encoded>`) Exchange supports.
    public static let maxLocalPartLength = 315
    /// The longest whole address (`local@domain`) Exchange supports.
    public static let maxAddressLength = 571

    /// Encapsulates `type`:`address` at `domain`, e.g. `encode(type: "FAX", address: "+15551234",
    /// domain: "example.com")` → `IMCEAFAX-+2B15551234@example.com`.
    ///
    /// The result is not checked against ``maxLocalPartLength`` and ``maxAddressLength``
    /// (encoding never fails); ``decode(_:)`` refuses results over the limits, as Exchange does.
    public static func encode(type: String, address: String, domain: String) -> String {
        var encoded = ""
        encoded.reserveCapacity(address.utf8.count)
        for byte in address.utf8 {
            if isKept(byte) {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else if byte == UInt8(ascii: "/") {
                encoded += "_"
            } else {
                encoded += "+" + hexDigits(byte)
            }
        }
        return "IMCEA\(type)-\(encoded)@\(domain)"
    }

    /// Decapsulates an IMCEA address: `IMCEAFAX-+2B15551234@example.com` → `("FAX", "+15551234")`.
    ///
    /// The type comes back upper-cased; the domain is not checked here (the directory decides
    /// which domains it decodes for). Returns nil when `address` is not a well-formed IMCEA address.
    public static func decode(_ address: String) -> (type: String, address: String)? {
        guard address.count <= maxAddressLength, let at = address.lastIndex(of: "@") else { return nil }
        let local = address[..<at]
        guard local.count <= maxLocalPartLength,
              address[address.index(after: at)...].isEmpty == false,
              local.count > 5, local.prefix(5).uppercased() == "IMCEA",
              let dash = local.dropFirst(5).firstIndex(of: "-") else { return nil }
        let type = String(local[local.index(local.startIndex, offsetBy: 5)..<dash])
        guard RoutingAddress.isTypeToken(type), !type.contains("-") else { return nil }
        let encoded = Array(local[local.index(after: dash)...].utf8)
        guard !encoded.isEmpty else { return nil }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(encoded.count)
        var index = 0
        while index < encoded.count {
            let byte = encoded[index]
            if isKept(byte) {
                bytes.append(byte)
                index += 1
            } else if byte == UInt8(ascii: "_") {
                bytes.append(UInt8(ascii: "/"))
                index += 1
            } else if byte == UInt8(ascii: "+"),
                      let high = hexValue(encoded[safe: index + 1]), let low = hexValue(encoded[safe: index + 2]) {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                return nil
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self), !decoded.isEmpty else { return nil }
        return (type.uppercased(), decoded)
    }

    /// ASCII letters and digits, `=` and `-`: the characters IMCEA keeps as they are.
    private static func isKept(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "="), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    private static func hexDigits(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }

    private static func hexValue(_ byte: UInt8?) -> UInt8? {
        guard let byte else { return nil }
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? {
        indices.contains(index) ? self[index] : nil
    }
}
