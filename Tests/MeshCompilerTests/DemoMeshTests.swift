// The demo mesh in Configs/ compiles cleanly and deterministically.
import XCTest
