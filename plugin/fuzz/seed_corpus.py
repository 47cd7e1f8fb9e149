#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from the test vectors.

Run from anywhere: python3 plugin/fuzz/seed_corpus.py
It fills plugin/fuzz/corpus/jwt (Wycheproof and RFC 7515 tokens), corpus/jwks (Wycheproof
key sets) and corpus/cwt (cose-wg CBOR messages).
"""

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors")


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def main():
    jws = json.load(open(os.path.join(VECTORS, "wycheproof", "json_web_signature_test.json")))
    for group in jws["testGroups"]:
        for case in group["tests"]:
            write("jwt", "wycheproof-%d" % case["tcId"], case["jws"].encode())

    rfc = json.load(open(os.path.join(VECTORS, "rfc7515", "appendix_a.json")))
    for index, example in enumerate(rfc["examples"]):
        write("jwt", "rfc7515-%d" % index, example["jws"].encode())

    jwk = json.load(open(os.path.join(VECTORS, "wycheproof", "json_web_key_test.json")))
    for index, group in enumerate(jwk["testGroups"]):
        keys = group.get("public") or group["private"]
        write("jwks", "wycheproof-%d" % index, json.dumps(keys).encode())

    for path in glob.glob(os.path.join(VECTORS, "cose-wg", "**", "*.json"), recursive=True):
        if os.path.basename(path) == "LICENSE":
            continue
        example = json.load(open(path))
        name = os.path.splitext(os.path.basename(path))[0]
        write("cwt", name, bytes.fromhex(example["output"]["cbor"]))


if __name__ == "__main__":
    main()
