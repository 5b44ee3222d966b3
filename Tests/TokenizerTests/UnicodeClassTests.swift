import XCTest
@testable import Tokenizer

/// The code point class table must equal Swift's Unicode properties with
/// scalars assigned in Unicode 16.0 or later treated as unassigned (llama.cpp's
/// tables are Unicode 15.1). This also documents how the table is made: print
/// `runs` below to regenerate `unicodeClassRuns`.
final class UnicodeClassTests: XCTestCase {
    static func expectedClass(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return CPClass.control } // surrogates (Cs)
        let p = s.properties
        var c: UInt8
        if let a = p.age, a.major >= 16 {
            c = CPClass.undefined
        } else {
            switch p.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: c = CPClass.number
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: c = CPClass.letter
            case .spaceSeparator, .lineSeparator, .paragraphSeparator: c = CPClass.separator
            case .nonspacingMark, .spacingMark, .enclosingMark: c = CPClass.mark
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                 .initialPunctuation, .finalPunctuation, .otherPunctuation: c = CPClass.punctuation
            case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol: c = CPClass.symbol
            case .control, .format, .surrogate, .privateUse: c = CPClass.control
            case .unassigned: c = CPClass.undefined
            @unknown default: c = CPClass.undefined
            }
        }
        if p.isWhitespace { c |= CPClass.whitespace }
        return c
    }

    func testTableMatchesSwiftProperties() {
        let table = codepointClassTable
        var runs = [UInt32]()
        var prev: UInt8 = 0xFF
        var mismatches = 0
        for v in UInt32(0)..<0x110000 {
            let c = UnicodeClassTests.expectedClass(v)
            if c != prev { runs.append(v << 8 | UInt32(c)); prev = c }
            if table[Int(v)] != c {
                mismatches += 1
                if mismatches < 10 { XCTFail(String(format: "U+%04X: table %d, expected %d", v, table[Int(v)], c)) }
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(runs, unicodeClassRuns)
    }

    func testSpotChecks() {
        let t = codepointClassTable
        XCTAssertEqual(codepointClass(0x41, t), CPClass.letter)                       // A
        XCTAssertEqual(codepointClass(0x20, t), CPClass.separator | CPClass.whitespace)
        XCTAssertEqual(codepointClass(0x0A, t), CPClass.control | CPClass.whitespace)
        XCTAssertEqual(codepointClass(0x3000, t), CPClass.separator | CPClass.whitespace) // ideographic space
        XCTAssertEqual(codepointClass(0x0301, t), CPClass.mark)                         // combining acute
        XCTAssertEqual(codepointClass(0x00BD, t), CPClass.number)                       // ½
        XCTAssertEqual(codepointClass(0x1F680, t), CPClass.symbol)                      // 🚀
        XCTAssertEqual(codepointClass(0x5F, t), CPClass.punctuation)                    // _
        XCTAssertEqual(codepointClass(0x24, t), CPClass.symbol)                         // $
        XCTAssertEqual(codepointClass(0x110000, t), CPClass.undefined)
    }
}
