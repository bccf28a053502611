// Writes display_amount.golden: what ICU's Intl.NumberFormat (style
// "currency", fraction digits = our ISO exponent) makes of amounts in every
// currency of payment/currency.go and every locale DisplayAmount supports.
// TestDisplayAmountMatchesICU compares DisplayAmount with it. Regenerate
// after a change of the currency table or of the locales, from the
// repository root:
//
//	node payment/testdata/display_amount.js > payment/testdata/display_amount.golden
//
// Amounts are formatted from exact decimal strings (never floats), which
// Intl.NumberFormat accepts since Node 19.
const fs = require("fs");
const path = require("path");
const src = fs.readFileSync(path.join(__dirname, "..", "currency.go"), "utf8");
const codes = [...src.matchAll(/^\t"([A-Z]{3})": (\d),/gm)].map((m) => [m[1], Number(m[2])]);
const locales = ["en-GB", "en-US", "de-DE", "fr-FR", "ja-JP"];
const every = [-123456n, 100000000000000n];
const some = [0n, 1n, -1n, 5n, 99n, 100n, 999n, 1000n, 123456n, 1234567n, 100000000n, 99999999999999n,
  -9223372036854775807n];
const detailed = new Set(["USD", "GBP", "EUR", "JPY", "BHD", "CLF", "XOF", "CNY", "CHF", "INR"]);

function decimal(minor, exp) {
  const neg = minor < 0n;
  let s = (neg ? -minor : minor).toString().padStart(exp + 1, "0");
  if (exp > 0) s = s.slice(0, s.length - exp) + "." + s.slice(s.length - exp);
  return (neg ? "-" : "") + s;
}

const out = ["# locale\tcurrency\tminor\tICU " + process.versions.icu + " (CLDR " + process.versions.cldr + ")"];
for (const loc of locales) {
  for (const [code, exp] of codes) {
    const nf = new Intl.NumberFormat(loc, { style: "currency", currency: code, minimumFractionDigits: exp,
      maximumFractionDigits: exp });
    for (const m of detailed.has(code) ? some.concat(every) : every) {
      out.push([loc, code, m.toString(), nf.format(decimal(m, exp))].join("\t"));
    }
  }
}
process.stdout.write(out.join("\n") + "\n");
