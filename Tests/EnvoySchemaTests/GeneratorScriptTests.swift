// The build-time scripts that make meshctl's API: the descriptor extractor must find files
// embedded anywhere in a binary (with junk around them, in two differing embeddings), and the
// wire check must catch an xds-protos message that disagrees with the binary's.
import Foundation
import XCTest

final class GeneratorScriptTests: XCTestCase {
    func testExtractorAndWireCheck() throws {
        let python = TestSupport.python
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("no project Python at \(python): set MESHCTL_PYTHON (make test does)") }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("check.py")
        try #"""
        import os, sys
        sys.path.insert(0, sys.argv[1])
        import api_diff, extract_envoy_descriptors as x
        from google.protobuf import descriptor_pb2

        def file(name, deps=(), field_type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, json_name=False):
            f = descriptor_pb2.FileDescriptorProto(name=name, package="p", syntax="proto3", dependency=list(deps))
            m = f.message_type.add(name=name.split("/")[-1].split(".")[0].capitalize())
            fd = m.field.add(name="value", number=1, type=field_type, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if json_name:
                fd.json_name = "value"
            return f.SerializeToString()

        a, b = file("p/a.proto"), file("p/b.proto", deps=["p/a.proto"])
        a_upb = file("p/a.proto", json_name=True)  # the gRPC/upb embedding adds json_name
        blob = os.urandom(300) + b"\x00" + a_upb + b"\x00\x17junk" + b + b"\x00" + os.urandom(200) + a + b"\xff" * 8
        path = os.path.join(sys.argv[2], "fake-envoy")
        open(path, "wb").write(blob)
        files, notes = x.extract(path)
        assert set(files) == {"p/a.proto", "p/b.proto"}, files.keys()
        assert files["p/a.proto"] == a and files["p/b.proto"] == b, "the C++ copy (without json_name) is kept, byte for byte"
        assert notes == [], notes
        ordered = [f.name for f in x.descriptor_set(files).file]
        assert ordered == ["p/a.proto", "p/b.proto"], ordered

        # A missing dependency is an error, not a silent hole.
        open(path, "wb").write(os.urandom(64) + b + os.urandom(64))
        try:
            x.descriptor_set(x.extract(path)[0])
            raise AssertionError("a missing dependency was not reported")
        except SystemExit as error:
            assert "p/a.proto" in str(error), error

        # Wire check: same field number, different type.
        envoy = {"p/a.proto": a}
        package = {"p/a.proto": file("p/a.proto", field_type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT32)}
        assert api_diff.wire_incompatibilities(envoy, envoy, ["p/a.proto"]) == []
        problems = api_diff.wire_incompatibilities(envoy, package, ["p/a.proto"])
        assert len(problems) == 1 and "p.A field 1" in problems[0], problems
        diff = api_diff.compare(envoy, package)
        assert diff["fields_changed"] and "API diff" in api_diff.summary(diff)
        print("ok")
        """#.write(to: script, atomically: true, encoding: .utf8)
        let scripts = TestSupport.root.appendingPathComponent("scripts").path
        let run = try TestSupport.run(python, [script.path, scripts, directory.path], timeout: 120)
        XCTAssertEqual(run.status, 0, String(decoding: run.stdout + run.stderr, as: UTF8.self))
        XCTAssertEqual(String(decoding: run.stdout, as: UTF8.self), "ok\n")
    }
}
