import Synchronization

/// A first-in first-out channel with a fixed capacity, used as a stage's inbox.
///
/// `send` suspends while the channel is full, so a slow stage slows the stages before it
/// (backpressure) and memory stays bounded by the capacity. After ``finish()`` no new
/// elements are accepted; receivers drain what is buffered, then get `nil`.
public final class BoundedChannel<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var head = 0
        var receivers: [CheckedContinuation<Element?, Never>] = []
        var senders: [(Element, CheckedContinuation<Bool, Never>)] = []
        var finished = false

        var count: Int { buffer.count - head }

        mutating func popFirst() -> Element? {
            guard head < buffer.count else { return nil }
            let element = buffer[head]
            head += 1
            if head > 1024, head * 2 > buffer.count {
                buffer.removeFirst(head)
                head = 0
            }
            return element
        }
    }

    private enum SendAction { case resumeReceiver(CheckedContinuation<Element?, Never>), done(Bool), wait }
    private enum ReceiveAction { case give(Element?, CheckedContinuation<Bool, Never>?), wait }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        precondition(capacity > 0, "a channel needs room for at least one element")
        self.capacity = capacity
    }

    /// The number of elements waiting, including senders suspended on a full channel.
    public var count: Int { state.withLock { $0.count + $0.senders.count } }

    /// Adds an element, waiting while the channel is full. Returns false after ``finish()``.
    @discardableResult
    public func send(_ element: Element) async -> Bool {
        if let accepted = offer(element, waitingAs: nil) { return accepted }
        return await withCheckedContinuation { continuation in
            // The state may have changed since the first look (a receiver may be waiting now),
            // so the offer is made again under the lock that also queues the sender.
            if let accepted = offer(element, waitingAs: continuation) { continuation.resume(returning: accepted) }
        }
    }

    /// Adds an element only if there is room now; never waits. Returns whether it was added.
    public func trySend(_ element: Element) -> Bool {
        offer(element, waitingAs: nil) ?? false
    }

    /// Hands the element to a waiting receiver or buffers it; returns nil when the channel is full
    /// (after queueing `sender`, if given, to be resumed by a receiver).
    private func offer(_ element: Element, waitingAs sender: CheckedContinuation<Bool, Never>?) -> Bool? {
        let action: SendAction = state.withLock { state in
            if state.finished { return .done(false) }
            if !state.receivers.isEmpty { return .resumeReceiver(state.receivers.removeFirst()) }
            if state.count < capacity {
                state.buffer.append(element)
                return .done(true)
            }
            if let sender { state.senders.append((element, sender)) }
            return .wait
        }
        switch action {
        case .resumeReceiver(let receiver):
            receiver.resume(returning: element)
            return true
        case .done(let accepted):
            return accepted
        case .wait:
            return nil
        }
    }

    /// Takes the next element, waiting while the channel is empty; nil once finished and drained.
    public func receive() async -> Element? {
        await withCheckedContinuation { continuation in
            let action: ReceiveAction = state.withLock { state in
                if let element = state.popFirst() {
                    var released: CheckedContinuation<Bool, Never>?
                    if !state.senders.isEmpty {
                        let (waiting, sender) = state.senders.removeFirst()
                        state.buffer.append(waiting)
                        released = sender
                    }
                    return .give(element, released)
                }
                if !state.senders.isEmpty {
                    let (waiting, sender) = state.senders.removeFirst()
                    return .give(waiting, sender)
                }
                if state.finished { return .give(nil, nil) }
                state.receivers.append(continuation)
                return .wait
            }
            if case .give(let element, let sender) = action {
                sender?.resume(returning: true)
                continuation.resume(returning: element)
            }
        }
    }

    /// Stops accepting elements and wakes waiting receivers once the buffer is drained.
    public func finish() {
        let receivers = state.withLock { state -> [CheckedContinuation<Element?, Never>] in
            state.finished = true
            guard state.count == 0, state.senders.isEmpty else { return [] }
            defer { state.receivers.removeAll() }
            return state.receivers
        }
        for receiver in receivers { receiver.resume(returning: nil) }
    }
}

extension BoundedChannel: AsyncSequence {
    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: BoundedChannel
        public mutating func next() async -> Element? { await channel.receive() }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}
