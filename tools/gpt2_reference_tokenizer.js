// The reference GPT-2 encoder (the npm package gpt-3-encoder, MIT) over a file
// of byte strings, for tools/check_gpt2_tokenizer.py.
//
//   node tools/gpt2_reference_tokenizer.js ENCODER_DIR RECORDS OUT
//   node tools/gpt2_reference_tokenizer.js --classes     (Node's \p{L} \p{N} \s, as runs)
//
// RECORDS: byte strings, each a little-endian uint32 length and the bytes.
// gpt-3-encoder encodes a JavaScript string: it cuts the string with its
// regular expression and encodes each piece's UTF-8 bytes. A byte string
// becomes a JavaScript string here as Python's surrogateescape would make it:
// valid UTF-8 as its characters, every other byte b as the lone surrogate
// U+DC00 + b; each piece then stands for the original bytes it covers. For
// valid UTF-8 this is exactly the package's encode(), which is checked on
// every record that is valid UTF-8 (and not too long for encode's quadratic
// array concatenation). The package's own functions (its regular expression,
// bpe(), byte encoder and vocabulary) do the work: its Encoder.js is run
// unchanged, with one line appended that hands them out.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

if (process.argv[2] === '--classes') {
    const L = /\p{L}/u, N = /\p{N}/u, S = /\s/u;
    const out = ['unicode ' + process.versions.unicode];
    let prev = -1;
    for (let c = 0; c < 0x110000; c++) {
        const s = c >= 0xd800 && c <= 0xdfff ? '' : String.fromCodePoint(c);
        const k = s === '' ? 0 : L.test(s) ? 1 : N.test(s) ? 2 : S.test(s) ? 3 : 0;
        if (k !== prev) { out.push(c + ' ' + k); prev = k; }
    }
    console.log(out.join('\n'));
    process.exit(0);
}

const [dir, recordsPath, outPath] = process.argv.slice(2);
const src = fs.readFileSync(path.join(dir, 'Encoder.js'), 'utf8') +
    '\nmodule.exports.__reference = { pat, bpe, byte_encoder, encoder };\n';
const mod = { exports: {} };
vm.runInThisContext('(function (require, module, exports, __dirname) {' + src + '\n})')(require, mod, mod.exports, dir);
const { encode } = mod.exports;
const { pat, bpe, byte_encoder, encoder } = mod.exports.__reference;

// bytes -> { str, starts }: starts[k] is the byte offset of UTF-16 unit k
function toString(b) {
    const units = [], starts = [];
    let valid = true;
    for (let i = 0; i < b.length;) {
        const c = b[i];
        let len = 0, cp = 0, lo = 0x80, hi = 0xbf;
        if (c < 0x80) { len = 1; cp = c; }
        else if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; if (c === 0xe0) lo = 0xa0; if (c === 0xed) hi = 0x9f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; if (c === 0xf0) lo = 0x90; if (c === 0xf4) hi = 0x8f; }
        let ok = len > 0 && i + len <= b.length;
        for (let j = 1; ok && j < len; j++) {
            const x = b[i + j];
            if (j === 1 ? (x < lo || x > hi) : (x & 0xc0) !== 0x80) ok = false;
            else cp = (cp << 6) | (x & 0x3f);
        }
        if (!ok) { valid = false; len = 1; cp = 0xdc00 + c; }
        const s = String.fromCodePoint(cp);
        for (let k = 0; k < s.length; k++) { units.push(s.charCodeAt(k)); starts.push(i); }
        i += len;
    }
    starts.push(b.length);
    let str = '';
    for (let k = 0; k < units.length; k += 8192) str += String.fromCharCode.apply(null, units.slice(k, k + 8192));
    return { str, starts, valid };
}

function referenceIds(b) {
    const { str, starts, valid } = toString(b);
    const ids = [];
    for (const m of str.matchAll(pat)) {
        const piece = b.subarray(starts[m.index], starts[m.index + m[0].length]);
        let t = '';
        for (const x of piece) t += byte_encoder[x];
        for (const tok of bpe(t).split(' ')) ids.push(encoder[tok]);
    }
    return { ids, valid, str };
}

const data = fs.readFileSync(recordsPath);
const lines = [];
let checked = 0;
for (let at = 0; at < data.length;) {
    const len = data.readUInt32LE(at);
    const b = data.subarray(at + 4, at + 4 + len);
    at += 4 + len;
    const { ids, valid, str } = referenceIds(b);
    if (ids.some((x) => typeof x !== 'number')) throw new Error('record ' + lines.length + ': an id the vocabulary lacks');
    if (valid && len <= 100000) {
        const pub = encode(str);
        if (pub.length !== ids.length || pub.some((x, i) => x !== ids[i]))
            throw new Error('record ' + lines.length + ': the byte mapping differs from encode()');
        checked++;
    }
    lines.push(ids.join(' '));
}
fs.writeFileSync(outPath, lines.join('\n') + (lines.length ? '\n' : ''));
console.error('reference encoder: ' + lines.length + ' records (' + checked + ' valid UTF-8 ones also through encode())');
