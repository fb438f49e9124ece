// Processes that tests start, waited for with a deadline. Built on posix_spawn and waitpid
// rather than Foundation's Process: a test that waits on a child must end in bounded time
// whatever the child does, and when it does not, the failure must say where the child was
// stuck (its threads' stacks) instead of holding CI until its global limit.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why waiting for a child failed.
public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
}

/// A process started by a test: its own process group, stdout and stderr to files, stdin
/// from /dev/null, default signal dispositions, no descriptors of the test process but 0–2.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    /// What the test calls it in failures (the executable and first argument).
    public let name: String
    public let outputPath: String
    private var status: Int32?

    private static let lock = NSLock()
    nonisolated(unsafe) private static var running: [pid_t: ChildProcess] = [:]

    /// Starts `executable` (a path, or a name looked up in PATH) in `directory`, stdout to
    /// `output` and stderr to `errors` (the same file when nil), both truncated first.
    public init(
        _ executable: String, _ arguments: [String], in directory: URL, output: URL, errors: URL? = nil,
        environment: [String: String]? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let flags = O_WRONLY | O_CREAT | O_TRUNC
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, flags, 0o644)
        if let errors {
            posix_spawn_file_actions_addopen(&actions, 2, errors.path, flags, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        guard Spawn.addChdir(&actions, directory.path) == 0, Spawn.addCloseFrom(&actions, 3) == 0 else {
            throw ChildProcessError(description: "posix_spawn file actions failed")
        }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none); sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = [executable] + arguments
        var cArgv = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer { for p in cArgv { free(p) }; for p in cEnv { free(p) } }
        var child: pid_t = 0
        let rc =
            executable.contains("/")
            ? posix_spawn(&child, executable, &actions, &attributes, &cArgv, &cEnv)
            : posix_spawnp(&child, executable, &actions, &attributes, &cArgv, &cEnv)
        guard rc == 0 else { throw ChildProcessError(description: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        pid = child
        name = ([URL(fileURLWithPath: executable).lastPathComponent] + arguments.prefix(1)).joined(separator: " ")
        outputPath = output.path
        Self.lock.lock(); Self.running[pid] = self; Self.lock.unlock()
    }

    /// Whether the child has not exited yet (reaps it when it has).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit status; 128 + N when signal N ended it. Only after the child has exited.
    public var terminationStatus: Int32 {
        guard let status else { preconditionFailure("\(name) (pid \(pid)) has not been waited for") }
        return status
    }

    /// Sends `signal` to the child alone.
    public func signal(_ signal: Int32) { if status == nil { kill(pid, signal) } }

    /// Waits at most `seconds` for the child to exit and returns its status. Past the
    /// deadline it records the stacks of the child's threads, kills its process group, and
    /// throws with those stacks and the end of its output.
    @discardableResult
    public func wait(seconds: Double = 300) throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = reap(blocking: false) { return status }
            usleep(20_000)
        }
        if let status = reap(blocking: false) { return status }
        let stacks = Self.stacks(of: pid)
        kill(-pid, SIGKILL); kill(pid, SIGKILL)
        _ = reap(blocking: true)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        throw ChildProcessError(
            description: "\(name) (pid \(pid)) was still running after \(Int(seconds)) s and was killed.\n"
                + "Its threads were at:\n\(stacks)\nIts last output:\n\(output.suffix(4000))")
    }

    /// Kills every child still running (a test's tearDown: nothing outlives its test).
    public static func killAll() {
        lock.lock(); let children = Array(running.values); lock.unlock()
        for child in children where child.status == nil {
            kill(-child.pid, SIGKILL); kill(child.pid, SIGKILL)
            _ = child.reap(blocking: true)
        }
    }

    private func reap(blocking: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        let rc = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
        guard rc == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG spelled out: the macros are not imported.
        let signal = raw & 0x7f
        status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        Self.lock.lock(); Self.running[pid] = nil; Self.lock.unlock()
        return status
    }

    /// Every thread's stack of a live process, through gdb when it is installed.
    static func stacks(of pid: pid_t) -> String {
        var text = ""
        for path in ["/proc/\(pid)/status", "/proc/\(pid)/wchan"] {
            if let s = try? String(contentsOfFile: path, encoding: .utf8) { text += "\(path): \(s.prefix(400))\n" }
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else { return text + "(gdb not installed: no stacks)" }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("stacks-\(pid).txt")
        defer { try? FileManager.default.removeItem(at: file) }
        guard
            let gdb = try? ChildProcess(
                "/usr/bin/timeout", ["30", "/usr/bin/gdb", "-batch", "-p", "\(pid)", "-ex", "thread apply all bt 30"],
                in: FileManager.default.temporaryDirectory, output: file)
        else { return text }
        _ = try? gdb.wait(seconds: 40)
        return text + ((try? String(contentsOfFile: file.path, encoding: .utf8)) ?? "")
    }
}

/// glibc's posix_spawn extensions that Swift's Glibc module does not import.
private enum Spawn {
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    static let addChdir: AddChdir = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")!, to: AddChdir.self)
    static let addCloseFrom: AddCloseFrom = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")!, to: AddCloseFrom.self)
}
