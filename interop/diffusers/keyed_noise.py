"""The runtime's keyed noise (runtime/Diffusion.Runtime/Noise/NoiseGenerator.cs), written again here from its
definition, so that diffusers' stochastic schedulers can be given the very draws the runtime makes:

value j of draw d for image i under seed s comes from the Philox4x32-10 block of counter (j div 4 … as the pair
needs it, d, i mod 2³², i div 2³²) under key (s mod 2³², s div 2³²); Box–Muller on the word pair (2⌊j/2⌋, 2⌊j/2⌋ + 1):
u₁ = ((w₀ >> 8) + ½)/2²⁴, angle = ((w₁ >> 8)/2²³ − 1)π, radius √(−2 ln u₁); even j take radius·cos, odd j radius·sin.
"""
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox_words(count, c1, c2, c3, k0, k1):
    """The first `count` words (a multiple of 4) of the stream of blocks (b, c1, c2, c3), b = 0, 1, …"""
    blocks = count // 4
    x0 = np.arange(blocks, dtype=np.uint64)
    x1 = np.full(blocks, c1, dtype=np.uint64)
    x2 = np.full(blocks, c2, dtype=np.uint64)
    x3 = np.full(blocks, c3, dtype=np.uint64)
    for r in range(10):
        ka, kb = np.uint64((k0 + r * W0) & MASK), np.uint64((k1 + r * W1) & MASK)
        p0, p1 = np.uint64(M0) * x0, np.uint64(M1) * x2
        y0 = (p1 >> np.uint64(32)) ^ x1 ^ ka
        y2 = (p0 >> np.uint64(32)) ^ x3 ^ kb
        x1, x3 = p1 & np.uint64(MASK), p0 & np.uint64(MASK)
        x0, x2 = y0, y2
    return np.stack([x0, x1, x2, x3], axis=1).reshape(-1).astype(np.uint64)


def normal(seed, image, draw, size):
    """Draw `draw` of image `image` under `seed`: `size` standard normal float32 values."""
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    words = philox_words((size + 3) // 4 * 4, draw, image & MASK, (image >> 32) & MASK, k0, k1)
    pairs = (size + 1) // 2
    u1 = (((words[0:2 * pairs:2] >> np.uint64(8)).astype(np.float32) + np.float32(0.5)) * np.float32(1 / (1 << 24)))
    angle = ((words[1:2 * pairs:2] >> np.uint64(8)).astype(np.float32) * np.float32(1 / (1 << 23)) - np.float32(1)) \
        * np.float32(np.pi)
    radius = np.sqrt(np.float32(-2) * np.log(u1))
    values = np.empty(2 * pairs, dtype=np.float32)
    values[0::2] = radius * np.cos(angle)
    values[1::2] = radius * np.sin(angle)
    return values[:size]


def batch(seed, first_image, count, draw, size):
    """[count, size]: images first_image … first_image + count − 1, as NoiseGenerator fills a batch."""
    return np.stack([normal(seed, first_image + k, draw, size) for k in range(count)])
