// libFuzzer driver for meshctl's fuzz harnesses (Sources/FuzzHarnesses). `make fuzz` builds it with
// `-sanitize=fuzzer,address -D MESHCTL_FUZZING` and runs it once per harness (MESHCTL_FUZZ_HARNESS); built
// normally, as `swift build` does, it only explains how to use it.
import FuzzHarnesses
import Foundation

#if MESHCTL_FUZZING
/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): parses libFuzzer's flags and runs the loop.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var selected = FuzzHarness.envoyText

/// One input for the selected harness (also the symbol compiler-rt's own main expects).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

let environment = ProcessInfo.processInfo.environment
guard let name = environment["MESHCTL_FUZZ_HARNESS"], let harness = FuzzHarness(rawValue: name) else {
    FileHandle.standardError.write(Data("meshctl-fuzz: set MESHCTL_FUZZ_HARNESS to one of \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
    exit(2)
}
selected = harness
// An empty corpus directory starts from the harness's seeds (the project's corpora, Tests/FuzzCorpus).
if let directory = environment["MESHCTL_FUZZ_SEED_DIR"], let root = environment["MESHCTL_ROOT"],
   ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).isEmpty {
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (seed, bytes) in harness.seedInputs(root: URL(fileURLWithPath: root)) {
        try? Data(bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent("seed-" + seed))
    }
}
harness.prepare()
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput))
#else
FileHandle.standardError.write(Data("meshctl-fuzz: this build has no fuzzer; run `make fuzz` (harnesses: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
exit(2)
#endif
