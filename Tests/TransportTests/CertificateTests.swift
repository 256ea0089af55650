// The shared OpenSSL layer (OpenSSLSupport) as the transport, the development CA and the
// host-file checks use it: what a certificate says about itself, and whether a key is its own.
import Foundation
import MeshCertificates
import OpenSSLSupport
import XCTest

final class CertificateTests: XCTestCase {
    func testIssuedCertificateReadsBackWithItsIdentityAndDates() throws {
        let ca = try DevelopmentCA(commonName: "test CA")
        var request = CertificateRequest(commonName: "users")
        request.uris = ["spiffe://mesh.test/proxy/users", "spiffe://mesh.test/extra"]
        request.validForSeconds = 3600
        let issued = try ca.issue(request)

        let certificate = try XCTUnwrap(X509Certificate(pem: Array(issued.certificatePEM.utf8)))
        XCTAssertEqual(certificate.uriNames, ["spiffe://mesh.test/proxy/users", "spiffe://mesh.test/extra"])
        XCTAssertEqual(certificate.commonName, "users")
        XCTAssertEqual(certificate.subject, "/CN=users")
        XCTAssertEqual(certificate.validity, .valid)
        // notBefore is 300 s in the past by default, notAfter validForSeconds after that.
        let notAfter = try XCTUnwrap(certificate.notAfter).timeIntervalSinceNow
        XCTAssertEqual(notAfter, 3600 - 300, accuracy: 60)
        let summary = certificate.summary
        XCTAssertEqual(summary.validity, .valid)
        XCTAssertTrue(summary.notAfter.hasSuffix("GMT"), summary.notAfter)
        XCTAssertFalse(summary.serial.isEmpty)
        XCTAssertTrue(summary.serial.allSatisfy { $0.isHexDigit && !$0.isLowercase }, summary.serial)
        XCTAssertEqual(summary.notAfterDate, certificate.notAfter)
    }

    func testKeyMatchingAndMismatch() throws {
        let ca = try DevelopmentCA(commonName: "test CA")
        let one = try ca.issue(CertificateRequest(commonName: "one"))
        let two = try ca.issue(CertificateRequest(commonName: "two"))
        let certificate = try XCTUnwrap(X509Certificate(pem: Array(one.certificatePEM.utf8)))
        XCTAssertTrue(certificate.matches(try XCTUnwrap(PrivateKey(pem: Array(one.privateKeyPEM.utf8)))))
        XCTAssertFalse(certificate.matches(try XCTUnwrap(PrivateKey(pem: Array(two.privateKeyPEM.utf8)))))
        // A mismatch leaves nothing on OpenSSL's error queue for the next operation to misreport.
        XCTAssertEqual(OpenSSLErrorQueue.drain(), [])
    }

    func testExpiredAndNotYetValidCertificatesSayWhich() throws {
        let ca = try DevelopmentCA(commonName: "test CA")
        var past = CertificateRequest(commonName: "past")
        past.notBeforeOffset = -7200
        past.validForSeconds = 3600
        var future = CertificateRequest(commonName: "future")
        future.notBeforeOffset = 3600
        let expired = try XCTUnwrap(X509Certificate(pem: Array(try ca.issue(past).certificatePEM.utf8)))
        let early = try XCTUnwrap(X509Certificate(pem: Array(try ca.issue(future).certificatePEM.utf8)))
        XCTAssertEqual(expired.validity, .expired)
        XCTAssertEqual(early.validity, .notYetValid)
    }

    func testGarbageIsNotACertificateOrKeyAndLeavesNoError() {
        XCTAssertNil(X509Certificate(pem: Array("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8)))
        XCTAssertNil(X509Certificate(pem: [UInt8]()))
        XCTAssertNil(PrivateKey(pem: Array("not a key".utf8)))
        XCTAssertEqual(OpenSSLErrorQueue.drain(), [])
    }

    func testCARenewalRefusesAForeignKey() throws {
        let ca = try DevelopmentCA(commonName: "test CA")
        let other = try DevelopmentCA(commonName: "other CA")
        XCTAssertThrowsError(try DevelopmentCA(certificatePEM: ca.issued.certificatePEM, privateKeyPEM: other.issued.privateKeyPEM)) {
            XCTAssertTrue("\($0)".contains("does not belong"), "\($0)")
        }
        XCTAssertNoThrow(try DevelopmentCA(certificatePEM: ca.issued.certificatePEM, privateKeyPEM: ca.issued.privateKeyPEM))
    }

    func testSHA256MatchesAKnownVector() {
        let bytes = Array("abc".utf8)
        let digest = bytes.withUnsafeBytes { SHA256.digest($0.baseAddress, count: $0.count) }
        XCTAssertEqual(digest.map { String(format: "%02x", $0) }.joined(),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
