// libzmq wrapped once: contexts, sockets, multipart frames sent without copies and received
// without copies. Every failure becomes a thrown `ZMQError` carrying zmq_errno and its text.
// Not here: protocol meaning (see Messenger.swift).
import CZeroMQ
import Foundation

/// A failed libzmq call.
public struct ZMQError: Error, CustomStringConvertible {
    public let errno: Int32
    public let operation: String
    public var description: String { "\(operation): \(String(cString: zmq_strerror(errno))) (errno \(errno))" }

    static func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
        if rc == -1 { throw ZMQError(errno: zmq_errno(), operation: operation()) }
    }
}

/// One libzmq context per process; sockets keep it alive.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// - Parameter ioThreads: libzmq's background threads, which move (and under CURVE encrypt
    ///   and decrypt) every byte; each connection is served by one of them.
    public init(ioThreads: Int = 1) {
        handle = zmq_ctx_new()!
        if ioThreads > 1 { zmq_ctx_set(handle, ZMQ_IO_THREADS, Int32(ioThreads)) }
    }

    deinit { zmq_ctx_term(handle) }
}

public enum SocketType: Int32, Sendable {
    case router = 6, dealer = 5, push = 8, pull = 7, rep = 4, pair = 0

    var zmqType: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .rep: ZMQ_REP
        case .pair: ZMQ_PAIR
        }
    }
}

/// A frame received from the network: owns its zmq_msg_t, exposes the bytes without copying.
public final class ReceivedFrame: @unchecked Sendable {
    var message = zmq_msg_t()
    /// The part of the message this frame is: all of it, or the plaintext of a sealed frame once opened.
    private var viewStart = 0, viewCount: Int?
    init() { zmq_msg_init(&message) }
    deinit { zmq_msg_close(&message) }

    public var count: Int { viewCount ?? zmq_msg_size(&message) }

    /// The frame's bytes, valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: data, count: count))
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The frame's data: stable for the frame's lifetime (libzmq owns it until close).
    var data: UnsafeRawPointer { UnsafeRawPointer(zmq_msg_data(&message)) + viewStart }

    /// The whole message's bytes, writable (a received message is this process's own copy):
    /// where a sealed frame is opened in place.
    func withWholeMessage<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: zmq_msg_data(&message), count: zmq_msg_size(&message)))
    }

    /// From now on the frame is `count` bytes from `start` of the message.
    func narrow(start: Int, count: Int) {
        precondition(start >= 0 && count >= 0 && start + count <= zmq_msg_size(&message))
        viewStart = start; viewCount = count
    }
}

/// A frame to send: bytes copied into the message, or memory handed to libzmq without a
/// copy and kept alive by `owner` until libzmq has sent it.
public enum OutgoingFrame {
    case bytes([UInt8])
    case borrowed(UnsafeRawPointer, count: Int, owner: AnyObject)
    /// `count` bytes written by `fill` straight into libzmq's message (a sealed frame: one pass,
    /// no buffer of ours in between). `fill` returns false when it could not write them.
    case filled(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Bool)
}

/// A ZeroMQ socket. Not thread-safe: use each socket from one thread, as libzmq requires.
public final class ZMQSocket {
    let handle: UnsafeMutableRawPointer
    let context: ZMQContext

    public init(_ context: ZMQContext, _ type: SocketType) throws {
        guard let h = zmq_socket(context.handle, type.zmqType) else { throw ZMQError(errno: zmq_errno(), operation: "zmq_socket") }
        handle = h
        self.context = context
        try setOption(ZMQ_LINGER, Int32(0))
    }

    deinit { zmq_close(handle) }

    func setOption(_ option: Int32, _ value: Int32) throws {
        var v = value
        try ZMQError.check(zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size), "zmq_setsockopt(\(option))")
    }

    /// Sets the identity a ROUTER peer sees (call before connecting).
    public func setIdentity(_ id: String) throws {
        let bytes = Array(id.utf8)
        try ZMQError.check(zmq_setsockopt(handle, ZMQ_ROUTING_ID, bytes, bytes.count), "set identity \(id)")
    }

    /// Binds and returns the resolved endpoint (so `tcp://127.0.0.1:*` reports its port).
    @discardableResult
    public func bind(_ endpoint: String) throws -> String {
        try ZMQError.check(zmq_bind(handle, endpoint), "bind \(endpoint)")
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        try ZMQError.check(zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size), "last endpoint")
        return nulTerminatedString(buffer)
    }

    /// Stops listening on `endpoint` (as `bind` returned it); connections already made stay.
    public func unbind(_ endpoint: String) throws {
        try ZMQError.check(zmq_unbind(handle, endpoint), "zmq_unbind(\(endpoint))")
    }

    public func connect(_ endpoint: String) throws {
        try ZMQError.check(zmq_connect(handle, endpoint), "connect \(endpoint)")
    }

    /// Sends frames as one multipart message. Blocks while the peer's queue is full.
    public func send(_ frames: [OutgoingFrame]) throws {
        for (i, frame) in frames.enumerated() {
            let flags = i + 1 < frames.count ? ZMQ_SNDMORE : 0
            var msg = zmq_msg_t()
            switch frame {
            case let .bytes(b):
                try ZMQError.check(zmq_msg_init_size(&msg, b.count), "zmq_msg_init_size")
                b.withUnsafeBytes { if $0.count > 0 { zmq_msg_data(&msg).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            case let .borrowed(pointer, count, owner):
                // libzmq calls `release` once it no longer needs the memory, from its I/O thread.
                let hint = Unmanaged.passRetained(owner).toOpaque()
                let release: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
                    Unmanaged<AnyObject>.fromOpaque(hint!).release()
                }
                try ZMQError.check(zmq_msg_init_data(&msg, UnsafeMutableRawPointer(mutating: pointer), count, release, hint), "zmq_msg_init_data")
            case let .filled(count, fill):
                try ZMQError.check(zmq_msg_init_size(&msg, count), "zmq_msg_init_size")
                guard fill(UnsafeMutableRawBufferPointer(start: zmq_msg_data(&msg), count: count)) else {
                    zmq_msg_close(&msg)
                    throw ZMQError(errno: EINVAL, operation: "send: a frame could not be written")
                }
            }
            var rc = zmq_msg_send(&msg, handle, flags)
            while rc == -1 && zmq_errno() == EINTR { rc = zmq_msg_send(&msg, handle, flags) }
            if rc == -1 {
                let e = zmq_errno()
                zmq_msg_close(&msg)
                throw ZMQError(errno: e, operation: "send")
            }
        }
    }

    /// Receives one multipart message, or nil when nothing arrives within `timeout` seconds
    /// (or a signal interrupts the wait: callers loop on their own deadlines and stop flags).
    public func receive(timeout: Double?) throws -> [ReceivedFrame]? {
        if let timeout {
            var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            let rc = zmq_poll(&item, 1, Int(timeout * 1000))
            if rc == -1 && zmq_errno() == EINTR { return nil }
            try ZMQError.check(rc, "poll")
            if rc == 0 { return nil }
        }
        var frames: [ReceivedFrame] = []
        repeat {
            let f = ReceivedFrame()
            var rc = zmq_msg_recv(&f.message, handle, 0)
            while rc == -1 && zmq_errno() == EINTR { rc = zmq_msg_recv(&f.message, handle, 0) }
            try ZMQError.check(rc, "receive")
            frames.append(f)
        } while zmq_msg_more(&frames.last!.message) != 0
        return frames
    }
}

/// Waits until any of `sockets` has a message or `timeout` seconds pass; returns which are readable.
public func poll(_ sockets: [ZMQSocket], timeout: Double) throws -> [Bool] {
    var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    let rc = zmq_poll(&items, Int32(items.count), Int(timeout * 1000))
    if rc == -1 && zmq_errno() == EINTR { return items.map { _ in false } }
    try ZMQError.check(rc, "poll")
    return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
}

/// The text a C function wrote into `buffer`, up to its first NUL.
func nulTerminatedString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
