// Run face-api's original tfjs age/gender and expression nets (CPU backend) on raw RGB crops.
// Usage: node tools/faceapi_reference.js <unpacked npm package root> <crops.bin> <n> <size> > out.json
// crops.bin: n * size * size * 3 uint8 (RGB, row-major). Called by tools/make_attribute_reference.py.
const fs = require('fs');
const path = require('path');
const [root, cropsFile, n, size] = process.argv.slice(2);
const faceapi = require(path.resolve(root, 'package/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;

function weightMap(name) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package/model', `${name}-weights_manifest.json`)));
  const bin = fs.readFileSync(path.join(root, 'package/model', `${name}.bin`));
  const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  return tf.io.decodeWeights(buffer, manifest[0].weights);
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  faceapi.nets.ageGenderNet.loadFromWeightMap(weightMap('age_gender_model'));
  faceapi.nets.faceExpressionNet.loadFromWeightMap(weightMap('face_expression_model'));
  const bytes = fs.readFileSync(cropsFile);
  const s = Number(size);
  const crops = [];
  for (let i = 0; i < Number(n); i += 1) {
    crops.push(tf.tensor3d(new Uint8Array(bytes.subarray(i * s * s * 3, (i + 1) * s * s * 3)), [s, s, 3], 'int32'));
  }
  const input = await faceapi.toNetInput(crops);
  const ag = faceapi.nets.ageGenderNet.runNet(input);
  const expr = faceapi.nets.faceExpressionNet.runNet(input);
  const out = { backend: tf.getBackend(), tfjs: tf.version.tfjs, age: Array.from(ag.age.dataSync()),
    gender_logits: await ag.gender.array(), expression_logits: await expr.array() };
  process.stdout.write(JSON.stringify(out));
}
main();
