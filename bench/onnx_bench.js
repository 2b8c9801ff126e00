// onnx_bench.js: inference speed of an exported seed model in ONNX Runtime's
// CPU provider (onnxruntime-node), with lstm_bench's options, inputs and
// last line (samples_per_s=...), for bench/onnx_compare.sh.
//
//   NODE_PATH=build/onnxruntime/node_modules node bench/onnx_bench.js MODEL.onnx
//       [--batch 32] [--threads 2] [--steps 30] [--warmup 3] [--seq 200] [--vocab 20000]
//
// The ids are lstm_bench's: the same generator and seed, 2 + (s >> 33) %
// (vocab - 2), so neither side sees padding.
'use strict';

function arg(name, def) {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}

async function main() {
    const model = process.argv[2];
    if (!model || model.startsWith('--')) {
        console.error('usage: node onnx_bench.js MODEL.onnx [--batch N] [--threads N] [--steps N] [--warmup N] [--seq N] [--vocab N]');
        process.exit(2);
    }
    const batch = arg('--batch', 32), threads = arg('--threads', 2), steps = arg('--steps', 30);
    const warmup = arg('--warmup', 3), seq = arg('--seq', 200), vocab = arg('--vocab', 20000);
    const ort = require('onnxruntime-node');
    const session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    });
    const ids = new BigInt64Array(batch * seq);
    const M = (1n << 64n) - 1n;
    let s = 1234n;
    for (let i = 0; i < batch * seq; i++) {
        s = (s * 6364136223846793005n + 1442695040888963407n) & M;
        ids[i] = 2n + (s >> 33n) % BigInt(vocab - 2);
    }
    const feeds = { ids: new ort.Tensor('int64', ids, [batch, seq]) };
    console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version} cpu intra_op_threads=${threads}; ` +
                `batch=${batch} seq=${seq}`);
    let t0 = 0;
    for (let i = 0; i < warmup + steps; i++) {
        if (i === warmup) t0 = process.hrtime.bigint();
        await session.run(feeds);
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`steps=${steps} time=${dt.toFixed(3)}s`);
    console.log(`samples_per_s=${(steps * batch / dt).toFixed(2)}`);
}

main().catch((e) => { console.error(`onnx_bench: ${e.message}`); process.exit(1); });
