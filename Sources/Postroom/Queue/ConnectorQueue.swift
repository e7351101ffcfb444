import Foundation
import PostroomSystem

/// The queue of one connector: ids ready now, ids waiting for their retry time, and workers.
actor ConnectorQueue {
    let connector: any Connector
    private var ready: [(id: String, state: QueueState)] = []
    private var readyHead = 0
    private var cache: [String: (QueueEntry, [UInt8])] = [:]
    private var deferred: [String: Date] = [:]
    /// Every id ready, in flight or deferred: an id is never queued twice.
    private var known: Set<String> = []
    private var inFlight = 0
    private var inFlightIDs: Set<String> = []
    private var idleWaiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var waiters: [CheckedContinuation<(String, QueueState)?, Never>] = []
    private var stopping = false
    private var workers: [Task<Void, Never>] = []
    private var ticker: Task<Void, Never>?
    /// Messages kept in memory for entries that have not been attempted yet; beyond this they are read back from disk.
    private let cacheLimit = 256

    init(connector: any Connector) { self.connector = connector }

    func enqueue(_ id: String, state: QueueState, cached: (QueueEntry, [UInt8])?) {
        if deferred.removeValue(forKey: id) == nil {
            guard known.insert(id).inserted else { return }
        }
        if let cached, cache.count < cacheLimit { cache[id] = cached }
        if let waiter = waiters.popLast() {
            inFlight += 1
            inFlightIDs.insert(id)
            waiter.resume(returning: (id, state))
        } else {
            ready.append((id, state))
        }
    }

    func schedule(_ id: String, at date: Date) {
        if date <= Date() {
            enqueue(id, state: .deferred, cached: nil)
        } else if known.insert(id).inserted {
            deferred[id] = date
        }
    }

    func counts() -> [QueueState: Int] {
        [.active: ready.count - readyHead + inFlight, .deferred: deferred.count]
    }

    func start(service: DeliveryService) {
        let connector = self.connector
        for _ in 0..<connector.configuration.concurrency {
            workers.append(Task {
                while let (id, state) = await self.next() {
                    let cached = self.takeCached(id)
                    let outcome = await service.attempt(id, state: state, cached: cached, connector: connector)
                    self.finished(id, outcome: outcome)
                }
            })
        }
        ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                self.promoteDue()
            }
        }
    }

    private func takeCached(_ id: String) -> (QueueEntry, [UInt8])? { cache.removeValue(forKey: id) }

    private func next() async -> (String, QueueState)? {
        if stopping { return nil }
        if readyHead < ready.count {
            let item = ready[readyHead]
            readyHead += 1
            if readyHead > 4096, readyHead * 2 > ready.count {
                ready.removeFirst(readyHead)
                readyHead = 0
            }
            inFlight += 1
            inFlightIDs.insert(item.id)
            return item
        }
        // enqueue() marks an id handed to a waiting worker as in flight before resuming it.
        return await withCheckedContinuation { waiters.append($0) }
    }

    private func finished(_ id: String, outcome: (QueueState, Date)?) {
        inFlight -= 1
        inFlightIDs.remove(id)
        for waiter in idleWaiters.removeValue(forKey: id) ?? [] { waiter.resume() }
        if let (_, date) = outcome {
            deferred[id] = date
        } else {
            known.remove(id)
        }
    }

    private func promoteDue() {
        guard !stopping, !deferred.isEmpty else { return }
        let now = Date()
        let due = deferred.filter { $0.value <= now }.map(\.key).sorted()
        for id in due { enqueue(id, state: .deferred, cached: nil) }
    }

    /// Removes an id from the schedule and waits until no worker is delivering it.
    func quiesce(_ id: String) async {
        forget(id)
        if inFlightIDs.contains(id) {
            await withCheckedContinuation { idleWaiters[id, default: []].append($0) }
            forget(id)
        }
    }

    /// Removes an id from the schedule (held or removed by an operator).
    func forget(_ id: String) {
        deferred[id] = nil
        known.remove(id)
        ready.removeAll { $0.id == id }
        readyHead = min(readyHead, ready.count)
        cache[id] = nil
    }

    func stop(timeout: Duration) async {
        stopping = true
        ticker?.cancel()
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
        let running = workers
        let deadline = ContinuousClock.now + timeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for worker in running { await worker.value } }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }
}
