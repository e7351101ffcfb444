import Glibc

/// The name Postroom gives itself in headers it writes (`Received: … by NAME`, `Reporting-MTA`,
/// generated `Message-ID`s): a fully qualified name, never a bare host name such as `vm`.
public enum HostIdentity {
    /// The configured `hostname` when set; else this machine's fully qualified name (its name if it
    /// has a dot, else the canonical name the resolver gives it); else the first accepted domain;
    /// else the bare host name (a machine with neither has nothing better).
    public static func name(configured: String?, acceptedDomains: [String]) -> String {
        if let configured, !configured.isEmpty { return configured.lowercased() }
        if let fqdn = fullyQualifiedHostname() { return fqdn }
        if let domain = acceptedDomains.first, !domain.isEmpty { return domain.lowercased() }
        return FileSystem.hostname()
    }

    /// This machine's name when it is fully qualified (has a dot), from `gethostname` or from the
    /// resolver's canonical name (`/etc/hosts`, DNS); nil otherwise.
    public static func fullyQualifiedHostname() -> String? {
        let bare = FileSystem.hostname()
        if bare.contains("."), !bare.hasSuffix(".") { return bare.lowercased() }
        var hints = addrinfo()
        hints.ai_flags = AI_CANONNAME
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(first) }
        guard let canonical = first.pointee.ai_canonname else { return nil }
        let name = String(cString: canonical)
        guard name.contains("."), !name.hasSuffix("."), name != "localhost.localdomain" else { return nil }
        return name.lowercased()
    }
}
