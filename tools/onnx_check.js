// onnx_check.js: runs an exported model in ONNX Runtime (onnxruntime-node)
// on rows of token ids and compares its outputs with libllm's for the same
// rows (tools/onnx_check.sh makes both files).
//
//   node tools/onnx_check.js MODEL.onnx ROWS EXPECTED [TOLERANCE]
//
// ROWS: one row of ids per line, as predict_ids reads them; EXPECTED: what
// predict_ids printed for them (one row of outputs per line). The rows run
// as one batch and again one at a time (a row's result must not depend on
// its batch). Prints the largest absolute difference; exit status 0 when
// every output is within TOLERANCE (default 1e-5), 1 otherwise, 2 on errors.
// onnxruntime-node is found through NODE_PATH (onnx_check.sh installs it
// under build/).
'use strict';
const fs = require('fs');

function readMatrix(path, parse) {
    return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '')
        .map((l) => l.trim().split(/\s+/).map(parse));
}

async function main() {
    const [model, rowsPath, expectedPath, tolArg] = process.argv.slice(2);
    if (!expectedPath) {
        console.error('usage: node onnx_check.js MODEL.onnx ROWS EXPECTED [TOLERANCE]');
        process.exit(2);
    }
    const tol = tolArg ? Number(tolArg) : 1e-5;
    const ort = require('onnxruntime-node');
    const rows = readMatrix(rowsPath, (s) => BigInt(s));
    const expected = readMatrix(expectedPath, Number);
    if (rows.length !== expected.length) throw new Error(`${rows.length} rows but ${expected.length} expected lines`);
    const T = rows[0].length, per = expected[0].length;

    const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
    if (session.inputNames.length !== 1 || session.inputNames[0] !== 'ids')
        throw new Error(`inputs ${session.inputNames}, not [ids]`);
    const outName = session.outputNames[0];
    const run = async (from, count) => {
        const ids = new BigInt64Array(count * T);
        for (let r = 0; r < count; r++) ids.set(rows[from + r], r * T);
        const out = await session.run({ ids: new ort.Tensor('int64', ids, [count, T]) });
        return out[outName].data;
    };

    let worst = 0, worstAt = '', bad = 0;
    const compare = (got, from, count, how) => {
        if (got.length !== count * per) throw new Error(`${how}: ${got.length} outputs, expected ${count * per}`);
        for (let r = 0; r < count; r++)
            for (let j = 0; j < per; j++) {
                const d = Math.abs(got[r * per + j] - expected[from + r][j]);
                if (!(d <= tol)) bad++;
                if (!(d <= worst)) { worst = d; worstAt = `${how}, row ${from + r}, output ${j}`; }
            }
    };
    compare(await run(0, rows.length), 0, rows.length, 'one batch');
    for (let r = 0; r < rows.length; r++) compare(await run(r, 1), r, 1, 'one row at a time');

    console.log(`onnx_check: ${model}: ${outName} [${rows.length}, ${per}] from ${rows.length} rows of ${T} ids, ` +
                `in one batch and one row at a time: max |ORT - libllm| = ${worst.toExponential(2)}` +
                (worst > 0 ? ` (${worstAt})` : '') + `; ${bad} outputs over ${tol}`);
    process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.error(`onnx_check: ${e.message}`); process.exit(2); });
