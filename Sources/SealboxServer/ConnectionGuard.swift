import Foundation
import NIOCore
import NIOHTTPTypes
import Synchronization

/// What a connection may cost the server before it has authenticated anything: a connection
/// costs a descriptor, so idle and slow ones are bounded in number and in time.
///
/// - **Caps**: at most `maxConnections` open at once, and at most `maxPerPeer` from one
///   address. A connection past a cap first evicts the oldest *idle* connection (no request
///   in progress) of that peer, or of anyone for the global cap; only when none is idle is
///   the new one closed. So a flood of idle connections from one address costs that address
///   its own old ones, and `/healthz` from anywhere still gets through.
/// - **Timeouts**: a request's head must arrive within `headerTimeout` of the connection
///   opening (slowloris), its body within `bodyTimeout` of the head, and a keep-alive
///   connection waits at most `idleTimeout` for its next request. A request being answered
///   (a run of minutes, a stream) has no timeout here: the run's own limits bound it.
public struct ConnectionLimits: Sendable, Equatable {
    public var maxConnections: Int
    public var maxPerPeer: Int
    public var headerTimeout: Duration
    public var bodyTimeout: Duration
    public var idleTimeout: Duration

    public init(maxConnections: Int = 4096, maxPerPeer: Int = 256, headerTimeout: Duration = .seconds(10),
                bodyTimeout: Duration = .seconds(60), idleTimeout: Duration = .seconds(60)) {
        self.maxConnections = maxConnections
        self.maxPerPeer = maxPerPeer
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
    }

    /// The global cap never passes half the descriptor limit: the other half is for runs
    /// (each jail takes a few), databases and the broker's sockets, so accept never meets
    /// EMFILE because of idle connections.
    public func fitted(toDescriptorLimit limit: Int) -> ConnectionLimits {
        var fitted = self
        fitted.maxConnections = max(16, min(maxConnections, limit / 2))
        fitted.maxPerPeer = min(maxPerPeer, fitted.maxConnections)
        return fitted
    }
}

/// The open connections of one server, shared by every connection's `ConnectionGuardHandler`.
public final class ConnectionRegistry: Sendable {
    public let limits: ConnectionLimits

    private struct Entry {
        var peer: String
        var channel: any Channel
        var busy: Bool
        var sequence: UInt64
        /// Called once when the client goes away during the current request.
        var onGone: [@Sendable () -> Void] = []
        /// The client ended its input (EOF): it will send nothing more.
        var inputClosed = false
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var perPeer: [String: Int] = [:]
        var next: UInt64 = 0
        var refused = 0
        var evicted = 0
        var timedOut = 0
        /// Channels closed lately (a bounded ring): a request still being handled on one of
        /// them learns that its client is gone even after the entry was removed.
        var closed: [ObjectIdentifier] = []
        var closedHead = 0
    }

    static let closedRing = 4096

    private let state = Mutex(State())

    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    public struct Stats: Sendable {
        public var open: Int
        public var refused: Int
        public var evicted: Int
        public var timedOut: Int
    }

    public var stats: Stats {
        state.withLock { Stats(open: $0.entries.count, refused: $0.refused, evicted: $0.evicted, timedOut: $0.timedOut) }
    }

    /// Registers a new connection; false when it must be closed at once (a cap is reached
    /// and nothing idle can make room). Evicted idle connections are closed here.
    func open(_ channel: any Channel, peer: String) -> Bool {
        let key = ObjectIdentifier(channel)
        let (accepted, evict): (Bool, [any Channel]) = state.withLock { s in
            var evict: [any Channel] = []
            func oldestIdle(_ matching: (Entry) -> Bool) -> ObjectIdentifier? {
                s.entries.filter { !$0.value.busy && matching($0.value) }.min { $0.value.sequence < $1.value.sequence }?.key
            }
            func remove(_ id: ObjectIdentifier) {
                guard let entry = s.entries.removeValue(forKey: id) else { return }
                s.perPeer[entry.peer, default: 1] -= 1
                if s.perPeer[entry.peer] == 0 { s.perPeer[entry.peer] = nil }
                s.evicted += 1
                evict.append(entry.channel)
            }
            if s.perPeer[peer, default: 0] >= limits.maxPerPeer {
                guard let victim = oldestIdle({ $0.peer == peer }) else {
                    s.refused += 1
                    return (false, [])
                }
                remove(victim)
            }
            if s.entries.count >= limits.maxConnections {
                guard let victim = oldestIdle({ _ in true }) else {
                    s.refused += 1
                    return (false, evict)
                }
                remove(victim)
            }
            s.next += 1
            s.entries[key] = Entry(peer: peer, channel: channel, busy: false, sequence: s.next)
            s.perPeer[peer, default: 0] += 1
            return (true, evict)
        }
        for channel in evict { channel.close(promise: nil) }
        return accepted
    }

    func close(_ channel: any Channel) {
        let callbacks: [@Sendable () -> Void] = state.withLock { s in
            guard let entry = s.entries.removeValue(forKey: ObjectIdentifier(channel)) else { return [] }
            s.perPeer[entry.peer, default: 1] -= 1
            if s.perPeer[entry.peer] == 0 { s.perPeer[entry.peer] = nil }
            if s.closed.count < Self.closedRing {
                s.closed.append(ObjectIdentifier(channel))
            } else {
                s.closed[s.closedHead] = ObjectIdentifier(channel)
                s.closedHead = (s.closedHead + 1) % Self.closedRing
            }
            return entry.onGone
        }
        for callback in callbacks { callback() }
    }

    func setBusy(_ channel: any Channel, _ busy: Bool) {
        state.withLock { s in
            s.entries[ObjectIdentifier(channel)]?.busy = busy
            // A request answered: its "gone" callbacks are moot.
            if !busy { s.entries[ObjectIdentifier(channel)]?.onGone = [] }
        }
    }

    /// Runs `callback` once if the client of `channel` goes away (closes, or ends its input)
    /// before the current request is answered; at once when it already has. A run waiting in
    /// the queue uses it to be dropped before it starts. A channel this registry never saw
    /// (a test's) is never called gone.
    public func whenGone(_ channel: any Channel, _ callback: @escaping @Sendable () -> Void) {
        let key = ObjectIdentifier(channel)
        let gone = state.withLock { s -> Bool in
            if let entry = s.entries[key] {
                if entry.inputClosed { return true }
                s.entries[key]?.onGone.append(callback)
                return false
            }
            return s.closed.contains(key)
        }
        if gone { callback() }
    }

    /// The client ended its input (EOF) in the middle of a request: like nginx, taken as the
    /// client giving up (HTTP/1.1 clients do not half-close while waiting for an answer).
    func inputClosed(_ channel: any Channel) {
        let callbacks: [@Sendable () -> Void] = state.withLock { s in
            guard let entry = s.entries[ObjectIdentifier(channel)] else { return [] }
            s.entries[ObjectIdentifier(channel)]?.inputClosed = true
            s.entries[ObjectIdentifier(channel)]?.onGone = []
            return entry.busy ? entry.onGone : []
        }
        for callback in callbacks { callback() }
    }

    func countTimeout() {
        state.withLock { $0.timedOut += 1 }
    }
}

/// One connection's guard, right after the HTTP codec: registers the connection, tracks
/// whether a request is in progress, and enforces the header, body and idle timeouts.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let registry: ConnectionRegistry
    private var timer: Scheduled<Void>?
    private var registered = false
    /// A request head was read and its response has not ended.
    private var inRequest = false

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { register(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        register(context)
        context.fireChannelActive()
    }

    private func register(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard registry.open(context.channel, peer: peer) else {
            context.close(promise: nil)
            return
        }
        arm(context, after: registry.limits.headerTimeout)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if registered { registry.close(context.channel) }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            registry.inputClosed(context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            inRequest = true
            registry.setBusy(context.channel, true)
            arm(context, after: registry.limits.bodyTimeout)
        case .body:
            break
        case .end:
            // Read whole: no timeout while it is answered.
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inRequest = false
            registry.setBusy(context.channel, false)
            arm(context, after: registry.limits.idleTimeout)
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext, after duration: Duration) {
        timer?.cancel()
        let nanos = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.registry.countTimeout()
            context.close(promise: nil)
        }
    }
}
