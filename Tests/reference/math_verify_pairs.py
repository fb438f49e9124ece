"""Answer pairs graded by Math-Verify, the reference for redi-ps's `math` answer rule.

Writes Tests/GradingTests/math_verify_pairs.jsonl: one {"reference", "sample", "math_verify"}
per line, where `sample` is a model-style output ending in a boxed answer and `math_verify` is
`verify(parse(reference), parse(sample))`. Regenerate after a Math-Verify upgrade:
    python3 -m pip install math-verify && python3 Tests/reference/math_verify_pairs.py
"""
import json
import random
from fractions import Fraction
from pathlib import Path

from math_verify import parse, verify
from importlib.metadata import version

# (reference, [candidate answers]) written by hand: equivalent forms and near misses.
HAND = [
    (r"\frac{1}{2}", [r"0.5", r"\frac12", r"1/2", r"\dfrac{1}{2}", r"50\%", r"0.50", r"\frac{2}{4}", r"0.51", r"2", r"-\frac{1}{2}"]),
    (r"\frac{\sqrt{2}}{2}", [r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt{2}}", r"0.707107", r"0.7071", r"\sqrt{2}", r"\frac{\sqrt{3}}{2}"]),
    (r"2\sqrt{3}", [r"\sqrt{12}", r"2 \sqrt 3", r"3.464102", r"\sqrt{3}\cdot 2", r"4\sqrt{3}/2", r"2\sqrt{2}", r"\sqrt{6}"]),
    (r"\frac{\sqrt{3}}{3}", [r"\frac{1}{\sqrt{3}}", r"\sqrt{3}/3", r"\frac{\sqrt{3}}{6}", r"0.577350"]),
    (r"x=5", [r"5", r"x = 5", r"x=6", r"y=5", r"5.0"]),
    (r"5", [r"x=5", r"5.00", r"5\text{ cm}", r"\$5", r"5^\circ", r"05", r"6", r"-5", r"\text{5}"]),
    (r"90^\circ", [r"90", r"90^{\circ}", r"\frac{\pi}{2}", r"89"]),
    (r"1000", [r"1,000", r"1{,}000", r"10^3", r"10^{3}", r"1000.0", r"100", r"1001"]),
    (r"(1,2)", [r"(1,2)", r"(1, 2)", r"(2,1)", r"[1,2]", r"\left(1,2\right)"]),
    (r"(3,-1)", [r"(3,-1)", r"(3, -1)", r"(-1,3)", r"(3,1)"]),
    (r"[1,2)", [r"[1,2)", r"[1, 2)", r"[1,2]", r"(1,2)"]),
    (r"(-\infty, 3]", [r"(-\infty,3]", r"(-\infty, 3)", r"[3,\infty)"]),
    (r"\{1,2\}", [r"\{2,1\}", r"1,2", r"2, 1", r"\{1,2,3\}", r"\{1\}"]),
    (r"1, 2, 3", [r"3, 2, 1", r"1,2", r"\{1,2,3\}"]),
    (r"\text{(A)}", [r"A", r"\text{A}", r"(A)", r"B", r"\textbf{(A)}"]),
    (r"\text{Monday}", [r"Monday", r"\text{monday}", r"Tuesday"]),
    (r"\pi", [r"3.141593", r"3.14", r"\pi", r"2\pi/2", r"180"]),
    (r"2\pi", [r"6.283185", r"\pi \cdot 2", r"2 \pi", r"\pi"]),
    (r"x^2+2x+1", [r"(x+1)^2", r"x^2+2x+1", r"1+2x+x^2", r"(x-1)^2", r"x^2+1"]),
    (r"\frac{x}{2}", [r"0.5x", r"x/2", r"\frac{1}{2}x", r"2x"]),
    (r"a+b", [r"b+a", r"a-b"]),
    (r"2^{10}", [r"1024", r"2^10", r"1023"]),
    (r"\binom{5}{2}", [r"10", r"\dbinom{5}{2}", r"20"]),
    (r"5!", [r"120", r"5!", r"24"]),
    (r"\log_2 8", [r"3", r"\log_{2}8", r"4"]),
    (r"e", [r"2.718282", r"e", r"3"]),
    (r"\infty", [r"\infty", r"-\infty", r"1000000"]),
    (r"-\frac{1}{2}", [r"\frac{-1}{2}", r"-0.5", r"\frac{1}{-2}", r"0.5"]),
    (r"\frac{3}{4}", [r"\tfrac34", r"3/4", r"0.75", r"75\%", r"\frac{4}{3}"]),
    (r"50\%", [r"50", r"0.5", r"\frac{1}{2}", r"50", r"5\%"]),
    (r"12", [r"twelve", r"12", r"\boxed{12}", r"12.0", r"11.999"]),
    (r"\frac{1}{3}", [r"0.333333", r"0.3333", r"0.33", r"\frac{2}{6}", r"1/3"]),
    (r"\sqrt{2}", [r"1.414214", r"1.4142", r"2^{1/2}", r"\sqrt[2]{2}", r"\sqrt{3}"]),
    (r"\sqrt[3]{2}", [r"2^{1/3}", r"1.259921", r"\sqrt{2}"]),
    (r"y=2x+1", [r"y=1+2x", r"2x+1", r"y = 2x + 1", r"y=2x-1"]),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", [r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}"]),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", [r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}"]),
    (r"|x-1|", [r"|1-x|", r"x-1"]),
    (r"\frac{7}{2}", [r"3\frac{1}{2}", r"3.5", r"\frac{14}{4}"]),
    (r"-3", [r"-3", r"3", r"- 3", r"-3.0"]),
    (r"0", [r"0", r"0.0", r"-0", r"\frac{0}{5}", r"1"]),
    (r"x \le 3", [r"x \leq 3", r"3 \ge x", r"x < 3"]),
    (r"\frac{a}{b}", [r"a/b", r"\frac{b}{a}"]),
    (r"\sin(30)", [r"\sin 30", r"\frac{1}{2}"]),
]


def numeric_pairs(rng):
    """Fractions, decimals, radicals and integers in the forms a model writes them."""
    out = []
    for _ in range(60):
        p, q = rng.randint(1, 40), rng.randint(2, 40)
        f = Fraction(p, q)
        gold = rf"\frac{{{f.numerator}}}{{{f.denominator}}}" if f.denominator != 1 else str(f.numerator)
        forms = [rf"\frac{{{p}}}{{{q}}}", f"{float(f):.6f}", f"{float(f):.3f}", f"{p}/{q}", rf"\dfrac{{{p * 2}}}{{{q * 2}}}",
                 rf"\frac{{{p + 1}}}{{{q}}}", f"{float(f) * 100:.4f}\\%"]
        out.append((gold, rng.choice(forms)))
    for _ in range(40):
        a, b = rng.randint(1, 9), rng.choice([2, 3, 5, 6, 7])
        gold = rf"{a}\sqrt{{{b}}}"
        forms = [rf"\sqrt{{{a * a * b}}}", f"{a * b ** 0.5:.6f}", rf"{a}\sqrt{b}", rf"\sqrt{{{b}}}\cdot {a}", rf"{a + 1}\sqrt{{{b}}}", f"{a * b ** 0.5:.2f}"]
        out.append((gold, rng.choice(forms)))
    for _ in range(40):
        n = rng.randint(-5000, 5000)
        forms = [str(n), f"{n:,}", f"{n}.0", str(n + 1), str(-n), f"{n}\\text{{ units}}", f"x={n}"]
        out.append((str(n), rng.choice(forms)))
    return out


def main():
    rng = random.Random(20261201)
    pairs = [(g, p) for g, ps in HAND for p in ps] + numeric_pairs(rng)
    lines = []
    for gold, pred in pairs:
        sample = f"Let me work through it. Wait, check again. So the final answer is $\\boxed{{{pred}}}$."
        verdict = bool(verify(parse(f"${gold}$"), parse(sample)))
        lines.append(json.dumps({"reference": gold, "sample": sample, "math_verify": verdict}, ensure_ascii=False))
    out = Path(__file__).resolve().parent.parent / "GradingTests" / "math_verify_pairs.jsonl"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} pairs graded by math-verify {version('math-verify')} to {out}")


if __name__ == "__main__":
    main()
