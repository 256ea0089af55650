// The one way tests run a program: arguments, optional stdin and working directory, both
// output pipes drained while the child runs (a full pipe would block it), a hard deadline.
import Foundation

/// How a finished (or abandoned) child ended.
public struct ProcessOutput: Sendable {
    /// The exit status, or the signal number when `signaled`.
    public let status: Int32
    /// Killed by a signal rather than exiting.
    public let signaled: Bool
    public let stdout: Data
    public let stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Why a child did not finish.
public struct ProcessTimeout: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public enum ProcessRunner {
    /// Runs `executable` and waits up to `timeout` seconds; a child still running then is killed and `ProcessTimeout` thrown.
    /// - Parameter kill: the signal sent on timeout (SIGTERM by default; the store's crash tests use SIGKILL).
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, in directory: URL? = nil,
                           timeout: TimeInterval = 60, kill signal: Int32 = SIGTERM) throws -> ProcessOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = stdin.map { _ in Pipe() }
        process.standardInput = input ?? FileHandle.nullDevice
        try process.run()
        if let input, let stdin {
            input.fileHandleForWriting.write(stdin)
            try? input.fileHandleForWriting.close()
        }
        let collected = Collected()
        let group = DispatchGroup()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                collected.set(pipe.fileHandleForReading.readDataToEndOfFile(), stdout: isOut)
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            Foundation.kill(process.processIdentifier, signal)
            process.waitUntilExit()
            _ = group.wait(timeout: .now() + 5)
            throw ProcessTimeout(description: "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)s")
        }
        process.waitUntilExit()
        _ = group.wait(timeout: .now() + 5)
        return ProcessOutput(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                             stdout: collected.stdout, stderr: collected.stderr)
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data(), err = Data()
        func set(_ data: Data, stdout: Bool) { lock.withLock { if stdout { out = data } else { err = data } } }
        var stdout: Data { lock.withLock { out } }
        var stderr: Data { lock.withLock { err } }
    }
}
