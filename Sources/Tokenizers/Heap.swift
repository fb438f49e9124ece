// A binary heap of candidate merges, shared by encoding (merges by rank) and training (pairs
// by count): the first element is the one that comes before every other. The order is the
// element type's own (a static function the compiler inlines; a stored closure made encoding
// a long word 60% slower).

protocol HeapOrdered {
    static func before(_ x: Self, _ y: Self) -> Bool
}

struct Heap<Element: HeapOrdered> {
    private var items: [Element] = []

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0, Element.before(items[i], items[(i - 1) / 2]) { items.swapAt(i, (i - 1) / 2); i = (i - 1) / 2 }
    }

    mutating func pop() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Element.before(items[l], items[m]) { m = l }
                if r < items.count && Element.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return first
    }
}
