// The per-response xDS instruments are looked up by resource type alone (no key string per call); what they record
// must still land in the server's registry under the same names and labels as every other instrument.
import ServerTelemetry
import XCTest
import XDSCache
import XDSProtocol

final class ServerMetricsTests: XCTestCase {
    func testPerTypePushInstrumentsRecordUnderTheirNamesAndLabels() {
        let metrics = ServerMetrics()
        for _ in 0..<3 {
            metrics.pushed(typeURL: TypeURL.cluster, bytes: 100)
            metrics.publishToSend(typeURL: TypeURL.cluster, seconds: 0.002)
            metrics.sendToAck(typeURL: TypeURL.cluster, seconds: 0.2)
        }
        metrics.pushed(typeURL: TypeURL.endpoint, bytes: 7)
        // A type outside the served ones is kept apart, under its message name.
        metrics.pushed(typeURL: "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", bytes: 5)
        let text = metrics.render(proxies: ProxyRegistry(), hub: SnapshotHub())
        XCTAssertTrue(text.contains(#"meshctl_xds_pushes_total{type="CDS"} 3"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_sent_bytes_total{type="CDS"} 300"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_pushes_total{type="EDS"} 1"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_sent_bytes_total{type="EDS"} 7"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_push_latency_seconds_count{phase="publish_to_send",type="CDS"} 3"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_push_latency_seconds_count{phase="send_to_ack",type="CDS"} 3"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_push_latency_seconds_bucket{phase="send_to_ack",type="CDS",le="0.25"} 3"#), text)
        XCTAssertTrue(text.contains(#"meshctl_xds_pushes_total{type="envoy.config.core.v3.TypedExtensionConfig"} 1"#), text)
        XCTAssertFalse(text.contains(#"phase="send_to_ack",type="EDS""#), "an instrument appears only once something is recorded in it")
    }
}
