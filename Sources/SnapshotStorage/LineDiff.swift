// Line-level diffs (Myers' O(ND) algorithm) rendered as unified-diff hunks, for showing how a
// changed resource changed in a form a pull request review reads naturally.

/// Computes and formats line diffs.
public enum LineDiff {
    /// One line of an edit script.
    public enum Line: Equatable, Sendable {
        case same(String)
        case removed(String)
        case added(String)
    }

    /// The shortest edit script from `old` to `new`. Past `maxEdits` differing lines it gives up on
    /// minimality and reports every remaining line as removed then added (bounded time and memory).
    public static func edits(_ old: [String], _ new: [String], maxEdits: Int = 2000) -> [Line] {
        var prefix = 0
        while prefix < old.count && prefix < new.count && old[prefix] == new[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < old.count - prefix && suffix < new.count - prefix && old[old.count - 1 - suffix] == new[new.count - 1 - suffix] { suffix += 1 }
        let a = Array(old[prefix..<(old.count - suffix)])
        let b = Array(new[prefix..<(new.count - suffix)])
        var result = old[0..<prefix].map(Line.same)
        result += middle(a, b, maxEdits: maxEdits)
        result += old[(old.count - suffix)...].map(Line.same)
        return result
    }

    private static func middle(_ a: [String], _ b: [String], maxEdits: Int) -> [Line] {
        let n = a.count, m = b.count
        if n == 0 { return b.map(Line.added) }
        if m == 0 { return a.map(Line.removed) }
        let limit = min(n + m, maxEdits)
        let offset = limit + 1
        var v = [Int](repeating: 0, count: 2 * limit + 3)
        // trace[d] holds v[-d...d] as it was before step d.
        var trace: [[Int]] = []
        var found = false
        search: for d in 0...limit {
            trace.append(Array(v[(offset - d)...(offset + d)]))
            for k in stride(from: -d, through: d, by: 2) {
                var x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) ? v[offset + k + 1] : v[offset + k - 1] + 1
                var y = x - k
                while x < n && y < m && a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = x
                if x >= n && y >= m {
                    found = true
                    break search
                }
            }
        }
        guard found else { return a.map(Line.removed) + b.map(Line.added) }
        var x = n, y = m
        var out: [Line] = []
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let saved = trace[d]
            func at(_ k: Int) -> Int { saved[k + d] }
            let k = x - y
            let previousK = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1
            let previousX = d == 0 ? 0 : at(previousK)
            let previousY = previousX - previousK
            while x > previousX && y > previousY {
                out.append(.same(a[x - 1]))
                x -= 1
                y -= 1
            }
            if d > 0 {
                if x == previousX {
                    out.append(.added(b[y - 1]))
                    y -= 1
                } else {
                    out.append(.removed(a[x - 1]))
                    x -= 1
                }
            }
        }
        while x > 0 && y > 0 {
            out.append(.same(a[x - 1]))
            x -= 1
            y -= 1
        }
        return out.reversed()
    }

    /// Unified-diff hunks ("@@ -l,n +l,n @@" then " ", "-", "+" lines) with `context` unchanged lines around changes.
    /// Empty when the texts are equal.
    public static func unified(_ old: [String], _ new: [String], context: Int = 3) -> [String] {
        let script = edits(old, new)
        let changed = script.indices.filter { if case .same = script[$0] { return false } else { return true } }
        guard !changed.isEmpty else { return [] }
        // Ranges of script indices to print, merged when their context touches.
        var ranges: [ClosedRange<Int>] = []
        for i in changed {
            let lower = max(0, i - context), upper = min(script.count - 1, i + context)
            if let last = ranges.last, lower <= last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...max(last.upperBound, upper)
            } else {
                ranges.append(lower...upper)
            }
        }
        // Line numbers at each script position.
        var oldLine = [Int](repeating: 0, count: script.count + 1), newLine = oldLine
        for (i, line) in script.enumerated() {
            switch line {
            case .same:
                oldLine[i + 1] = oldLine[i] + 1
                newLine[i + 1] = newLine[i] + 1
            case .removed:
                oldLine[i + 1] = oldLine[i] + 1
                newLine[i + 1] = newLine[i]
            case .added:
                oldLine[i + 1] = oldLine[i]
                newLine[i + 1] = newLine[i] + 1
            }
        }
        var out: [String] = []
        for range in ranges {
            var body: [String] = []
            var oldCount = 0, newCount = 0
            for i in range {
                switch script[i] {
                case .same(let s):
                    body.append(" " + s)
                    oldCount += 1
                    newCount += 1
                case .removed(let s):
                    body.append("-" + s)
                    oldCount += 1
                case .added(let s):
                    body.append("+" + s)
                    newCount += 1
                }
            }
            let oldStart = oldCount == 0 ? oldLine[range.lowerBound] : oldLine[range.lowerBound] + 1
            let newStart = newCount == 0 ? newLine[range.lowerBound] : newLine[range.lowerBound] + 1
            out.append("@@ -\(oldStart),\(oldCount) +\(newStart),\(newCount) @@")
            out += body
        }
        return out
    }
}
