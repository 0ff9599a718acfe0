"""Reference pipelines in python onnxruntime, for modules/audio_test.go.

  python3 reference.py vad MODEL.onnx AUDIO.wav   -> JSON list: Silero VAD v5
      probability per 512-sample window, as silero-vad's OnnxWrapper computes
      it (64 samples of context before each window, state carried, sr=16000).
  python3 reference.py vad-bench|ww-bench MODEL(S) AUDIO.wav REPS -> median
      [wall, cpu] seconds of REPS runs of the above (onnxruntime, 1 thread).
  python3 reference.py ww MEL.onnx EMB.onnx AUDIO.wav -> JSON list of 96-d
      embeddings, one per 1280 samples, as openWakeWord's AudioFeatures computes
      them when streamed (int16-valued float input, mel x/10+2, 76 frames).
"""
import json
import sys
import wave

import numpy as np
import onnxruntime as ort


def read(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def session(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def vad(model, path):
    sr, pcm = read(path)
    assert sr == 16000
    x = pcm.astype(np.float32) / 32768
    s = session(model)
    state = np.zeros((2, 1, 128), np.float32)
    ctx = np.zeros((1, 64), np.float32)
    probs = []
    for i in range(0, len(x), 512):
        chunk = x[i:i + 512]
        if len(chunk) < 512:
            chunk = np.pad(chunk, (0, 512 - len(chunk)))
        inp = np.concatenate([ctx, chunk[None, :]], axis=1)
        out, state = s.run(None, {"input": inp, "state": state, "sr": np.array(16000, np.int64)})
        ctx = inp[:, -64:]
        probs.append(float(out[0][0]))
    return probs


def ww(mel, emb, path):
    # openWakeWord's AudioFeatures streamed 1280 samples at a time
    # (_streaming_features, _streaming_melspectrogram): the mel model on the
    # step and the 480 samples before it, x/10 + 2, a 76-frame buffer that
    # starts as ones, the embedding model on its last 76 frames.
    sr, pcm = read(path)
    assert sr == 16000
    x = pcm.astype(np.float32)
    m, e = session(mel), session(emb)
    buf = np.ones((76, 32), np.float32)
    out = []
    for s in range(len(x) // 1280):
        end = (s + 1) * 1280
        chunk = x[max(0, end - 1280 - 480):end]
        spec = np.squeeze(m.run(None, {"input": chunk[None, :]})[0]) / 10 + 2
        buf = np.vstack((buf, spec))[-76:]
        out.append(e.run(None, {"input_1": buf[None, :, :, None]})[0].reshape(96).tolist())
    return out


def bench(fn, reps):
    """Median seconds of reps runs of fn (after one warm-up), for the
    benchmarks in modules/audio_test.go: onnxruntime with 1 thread."""
    import time
    fn()
    ts, cs = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return [sorted(ts)[len(ts) // 2], sorted(cs)[len(cs) // 2]]


if __name__ == "__main__":
    if sys.argv[1] == "vad-bench":
        print(json.dumps(bench(lambda: vad(sys.argv[2], sys.argv[3]), int(sys.argv[4]))))
    elif sys.argv[1] == "ww-bench":
        print(json.dumps(bench(lambda: ww(sys.argv[2], sys.argv[3], sys.argv[4]), int(sys.argv[5]))))
    elif sys.argv[1] == "vad":
        print(json.dumps(vad(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(ww(sys.argv[2], sys.argv[3], sys.argv[4])))
