import Foundation
import Testing
@testable import Postroom

extension Spine {
    @Suite struct BoundedChannelTests {
        @Test func elementsComeOutInTheOrderTheyWentIn() async {
            let channel = BoundedChannel<Int>(capacity: 4)
            for value in 1...4 { #expect(await channel.send(value)) }
            #expect(channel.count == 4)
            var received: [Int] = []
            for _ in 1...4 { if let value = await channel.receive() { received.append(value) } }
            #expect(received == [1, 2, 3, 4])
            #expect(channel.count == 0)
        }

        @Test func orderHoldsThroughBackpressure() async {
            let channel = BoundedChannel<Int>(capacity: 2)
            let sender = Task {
                for value in 0..<500 { await channel.send(value) }
                channel.finish()
            }
            var received: [Int] = []
            for await value in channel { received.append(value) }
            await sender.value
            #expect(received == Array(0..<500))
        }

        @Test func sendWaitsWhileFullUntilAReceive() async {
            let channel = BoundedChannel<Int>(capacity: 2)
            #expect(channel.trySend(1))
            #expect(channel.trySend(2))
            let returned = Spine.Box(false)
            let sender = Task {
                let accepted = await channel.send(3)
                returned.set(true)
                return accepted
            }
            // count includes suspended senders: 3 means the third send is parked on the full channel.
            #expect(await Spine.wait { channel.count == 3 })
            #expect(returned.current == false, "send returned although the channel is full")

            #expect(await channel.receive() == 1)
            #expect(await sender.value == true)
            #expect(returned.current)
            #expect(channel.count == 2)
            #expect(await channel.receive() == 2)
            #expect(await channel.receive() == 3)
        }

        @Test func trySendRefusesWhenFull() async {
            let channel = BoundedChannel<String>(capacity: 1)
            #expect(channel.trySend("a"))
            #expect(!channel.trySend("b"))
            #expect(channel.count == 1)
            #expect(await channel.receive() == "a")
            #expect(channel.trySend("c"))
            #expect(await channel.receive() == "c")
        }

        @Test func finishDrainsBufferedElementsThenEnds() async {
            let channel = BoundedChannel<Int>(capacity: 3)
            for value in [7, 8, 9] { await channel.send(value) }
            channel.finish()
            #expect(await channel.send(10) == false)
            #expect(channel.trySend(11) == false)
            #expect(await channel.receive() == 7)
            #expect(await channel.receive() == 8)
            #expect(await channel.receive() == 9)
            #expect(await channel.receive() == nil)
            #expect(await channel.receive() == nil, "a finished, drained channel keeps answering nil")
        }

        @Test func finishWakesAWaitingReceiver() async {
            let channel = BoundedChannel<Int>(capacity: 1)
            let receiver = Task { await channel.receive() }
            channel.finish()
            let result = await Spine.withDeadline { await receiver.value }
            #expect(result == .some(nil), "the receiver got nil after finish (and did not hang)")
        }

        @Test func finishLetsASuspendedSenderBeDrained() async {
            let channel = BoundedChannel<Int>(capacity: 1)
            #expect(channel.trySend(1))
            let sender = Task { await channel.send(2) }
            #expect(await Spine.wait { channel.count == 2 })
            channel.finish()
            #expect(await channel.receive() == 1)
            #expect(await channel.receive() == 2)
            #expect(await channel.receive() == nil)
            #expect(await sender.value == true)
        }

        @Test func aWaitingReceiverGetsTheNextSend() async {
            let channel = BoundedChannel<Int>(capacity: 1)
            let receiver = Task { await channel.receive() }
            #expect(await channel.send(5))
            #expect(await receiver.value == 5)
        }

        @Test func manySendersOneReceiverDeliverEveryElementExactlyOnce() async {
            let channel = BoundedChannel<Int>(capacity: 4)
            let senders = 8
            let perSender = 500
            // A hang bound, not a timing: under a full parallel suite these tasks wait their turn on two cores.
            let received = await Spine.withDeadline(seconds: 120) {
                await withTaskGroup(of: Void.self) { group in
                    for sender in 0..<senders {
                        group.addTask {
                            for index in 0..<perSender { await channel.send(sender * perSender + index) }
                        }
                    }
                    var received: [Int] = []
                    for _ in 0..<(senders * perSender) {
                        guard let value = await channel.receive() else { break }
                        received.append(value)
                    }
                    await group.waitForAll()
                    return received
                }
            }
            guard let received else {
                Issue.record("senders and receiver did not finish")
                return
            }
            #expect(received.count == senders * perSender)
            #expect(Set(received) == Set(0..<(senders * perSender)))
            // One sender's elements stay in its order.
            for sender in 0..<senders {
                let own = received.filter { $0 / perSender == sender }
                #expect(own == own.sorted(), "sender \(sender) out of order")
            }
            #expect(channel.count == 0)
        }
    }
}
