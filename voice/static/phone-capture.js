// AudioWorklet: microphone samples at the context's rate -> 16 kHz PCM16 in 20 ms frames.
// A windowed-sinc low-pass (cut-off just under the new Nyquist) runs before the fractional
// decimation, so speech above 8 kHz does not fold back into the band the recogniser hears.
const TARGET_RATE = 16000;
const FRAME_SAMPLES = TARGET_RATE / 50; // 20 ms
const TAPS = 48;

function lowPass(ratio) {
  const cutoff = 0.45 / ratio; // cycles per input sample
  const taps = new Float32Array(TAPS + 1);
  let sum = 0;
  for (let i = 0; i <= TAPS; i++) {
    const n = i - TAPS / 2;
    const sinc = n === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * n) / (Math.PI * n);
    const window = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / TAPS); // Hamming
    taps[i] = sinc * window;
    sum += taps[i];
  }
  return taps.map((t) => t / sum);
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.taps = this.step > 1 ? lowPass(this.step) : null;
    this.history = new Float32Array(TAPS + 1); // last input samples, newest last
    this.filled = 0;
    this.position = 0; // where the next output sample falls, in input samples from now
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.length = 0;
  }

  filtered() {
    if (!this.taps) return this.history[TAPS];
    let acc = 0;
    for (let i = 0; i <= TAPS; i++) acc += this.taps[i] * this.history[i];
    return acc;
  }

  push(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.frame[this.length++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.length === FRAME_SAMPLES) {
      const out = this.frame;
      this.port.postMessage(out.buffer, [out.buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.length = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.history.copyWithin(0, 1);
      this.history[TAPS] = channel[i];
      this.position -= 1;
      while (this.position <= 0) {
        this.push(this.filtered());
        this.position += this.step;
      }
    }
    return true;
  }
}

registerProcessor("phone-capture", CaptureProcessor);
