"""The MLPerf Tiny audio datasets (speech-commands, toycar) and the numpy features they are computed with.

TensorFlow and librosa are not installed (and must not be needed), so the features are checked by
values worked out by hand from the libraries' definitions — window shapes, mel scale values, where a
tone's energy lands, what silence becomes — and against scipy where scipy computes the same thing.
Fixture folders are written here with the ``wave`` module: tones, silence and seeded noise.
"""

from __future__ import annotations

import hashlib
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from agent import datasets, model_file, runtimes
from agent.contract import RuntimeOptions
from agent.datasets import audio_features as af
from agent.datasets import speech_commands, toycar
from agent.datasets.wav import read_pcm16
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input

KWS_MODEL = Path(__file__).parent / "fixtures" / "tiny" / "kws_ref_model.tflite"
KWS_INPUT = TensorSpec("input_1", (1, 49, 10, 1), "int8", scale=0.5847029089927673, zero_point=83)  # the Tiny model's
AD_INPUT = TensorSpec("input_1", (1, 640), "float32")
RATE = 16000


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, width: int = 2, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(np.ascontiguousarray(samples).tobytes())
    return path


def tone(hz: float, seconds: float = 1.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def noise(seconds: float, seed: int, amplitude: int = 300) -> np.ndarray:
    return np.random.default_rng(seed).integers(-amplitude, amplitude, int(seconds * RATE)).astype(np.int16)


def tfds_order(keys: list[str]) -> list[str]:
    """TFDS's split order worked out from its rule: md5 of the split name then the example id."""
    return sorted(keys, key=lambda k: int(hashlib.md5(b"test" + k.encode()).hexdigest(), 16))


# --- tf.signal pieces ---------------------------------------------------------------------------

def test_tf_hann_window_is_periodic_for_even_lengths_and_symmetric_for_odd():
    w = af.tf_hann_window(480)
    assert w[0] == 0 and w[240] == pytest.approx(1.0) and np.allclose(w[1:], w[1:][::-1])  # w[n] = w[480 - n]
    assert np.allclose(w, scipy.signal.get_window("hann", 480, fftbins=True))
    assert np.allclose(af.tf_hann_window(7), np.hanning(7))  # TF: odd lengths use length - 1 even when periodic


def test_frames_count_and_content():
    assert af.frames(np.zeros(16000), 480, 320).shape == (49, 480)  # 1 + (16000 - 480) // 320
    assert af.frames(np.zeros(479), 480, 320).shape == (0, 480)
    assert af.frames(np.arange(10), 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]


def test_tf_stft_of_a_bin_centred_tone_peaks_at_its_bin_with_half_the_window_sum():
    k = 32  # 32 * 16000 / 512 = 1000 Hz
    magnitude = af.tf_stft_magnitude(np.sin(2 * np.pi * 1000 * np.arange(16000) / RATE), 480, 320)
    assert magnitude.shape == (49, 257)  # FFT length: the power of two above 480
    assert (magnitude.argmax(axis=1) == k).all()
    assert magnitude[:, k] == pytest.approx(af.tf_hann_window(480).sum() / 2, rel=0.01)  # 240 / 2


def test_htk_mel_scale_values():
    assert af.tf_hertz_to_mel(700.0) == pytest.approx(1127 * np.log(2))
    assert af.tf_hertz_to_mel(0.0) == 0


def test_tf_mel_matrix_triangles_partition_unity_inside_the_band_range():
    weights = af.tf_linear_to_mel_weight_matrix(40, 257, RATE, 20.0, 4000.0)
    assert weights.shape == (257, 40) and (weights[0] == 0).all()  # the DC bin is zeroed, as in HTK
    hz = np.arange(257) * 8000 / 256
    edges = np.linspace(af.tf_hertz_to_mel(20.0), af.tf_hertz_to_mel(4000.0), 42)
    centres_hz = 700 * (np.exp(edges / 1127) - 1)  # mel -> Hz by hand
    assert (weights[(hz <= 20) | (hz >= 4000)] == 0).all()
    inside = (hz >= centres_hz[1]) & (hz <= centres_hz[40])  # between the first and last band centres
    assert np.allclose(weights[inside].sum(axis=1), 1.0)  # neighbouring triangles add up to one
    assert weights.max() <= 1.0


def test_tf_mel_band_of_a_tone_is_the_band_whose_centre_is_nearest():
    edges = np.linspace(af.tf_hertz_to_mel(20.0), af.tf_hertz_to_mel(4000.0), 42)
    centres_hz = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    weights = af.tf_linear_to_mel_weight_matrix(40, 257, RATE, 20.0, 4000.0)
    for f in (300.0, 1000.0, 2500.0):
        k = round(f * 512 / RATE)  # the FFT bin of the tone
        mel = af.tf_stft_magnitude(np.sin(2 * np.pi * (k * RATE / 512) * np.arange(16000) / RATE), 480, 320) @ weights
        assert mel[0].argmax() == np.abs(centres_hz - k * RATE / 512).argmin()


def test_dct_matches_scipy_and_mfcc_scaling_is_tfs():
    x = np.random.default_rng(1).normal(size=(3, 40))
    assert np.allclose(af.dct_type2(x), scipy.fft.dct(x, type=2, norm=None))
    mfcc = af.tf_mfccs_from_log_mel_spectrograms(x)
    ortho = scipy.fft.dct(x, type=2, norm="ortho")
    assert np.allclose(mfcc[:, 1:], ortho[:, 1:]) and np.allclose(mfcc[:, 0], ortho[:, 0] * np.sqrt(2))
    constant = af.tf_mfccs_from_log_mel_spectrograms(np.full((1, 40), -2.5))
    assert constant[0, 0] == pytest.approx(np.sqrt(80) * -2.5) and np.allclose(constant[0, 1:], 0)


# --- librosa pieces -----------------------------------------------------------------------------

def test_slaney_mel_scale_values():
    assert af.slaney_hz_to_mel(200.0) == pytest.approx(3.0)  # linear part: f / (200 / 3)
    assert af.slaney_hz_to_mel(1000.0) == pytest.approx(15.0)
    assert af.slaney_hz_to_mel(6400.0) == pytest.approx(42.0)  # 27 log steps of 6.4 ** (1/27) above 1 kHz
    hz = [50.0, 999.0, 1000.0, 7777.0]
    assert af.slaney_mel_to_hz(af.slaney_hz_to_mel(np.array(hz))) == pytest.approx(hz)


def test_librosa_filterbank_bands_have_unit_area_in_hertz():
    bank = af.librosa_mel_filterbank(RATE, 1024, 128)
    assert bank.shape == (128, 513)
    area = bank.sum(axis=1) * RATE / 1024  # bins are 15.625 Hz apart
    assert np.allclose(area[64:], 1.0, atol=0.02)  # wide (log-region) triangles: Slaney area normalisation
    assert (bank[:, 0] == 0).all() and (bank >= 0).all()


def test_librosa_power_spectrogram_of_a_constant_is_the_hann_spectrum():
    power = af.librosa_power_spectrogram(np.ones(5000), 1024, 512)
    assert power.shape == (513, 1 + 5000 // 512)  # centred frames
    # periodic Hann of length N: W[0] = N/2, W[1] = -N/4, nothing else; reflect padding keeps a constant constant
    assert np.allclose(power[0], 512.0**2) and np.allclose(power[1], 256.0**2) and np.allclose(power[2:], 0, atol=1e-6)


def test_librosa_power_spectrogram_matches_scipys_stft_with_even_extension():
    y = np.random.default_rng(0).normal(size=20000)
    # scipy's "even" boundary is numpy's reflect padding; its default scaling divides by the window's sum (512)
    _, _, spectrum = scipy.signal.stft(y, nperseg=1024, noverlap=512, window="hann", boundary="even", padded=False,
                                       detrend=False)
    assert np.allclose(af.librosa_power_spectrogram(y, 1024, 512), np.abs(spectrum * 512) ** 2, rtol=1e-9, atol=1e-9)


def test_librosa_power_spectrogram_frames_are_centred():
    impulse = np.zeros(4096)
    impulse[2048] = 1.0
    power = af.librosa_power_spectrogram(impulse, 1024, 512)
    # frame 4 is centred on sample 2048: the window's peak (1.0) multiplies the impulse
    assert power[0].argmax() == 4 and power[0, 4] == pytest.approx(1.0)


# --- features as Tiny computes them -------------------------------------------------------------

def test_kws_mfcc_of_silence_is_log_offset_times_sqrt_2n():
    mfcc = speech_commands.kws_mfcc(np.zeros(16000, np.int16))
    assert mfcc.shape == (49, 10) and mfcc.dtype == np.float32
    assert np.allclose(mfcc[:, 0], np.sqrt(80) * np.log(1e-6)) and np.allclose(mfcc[:, 1:], 0, atol=1e-5)


def test_kws_mfcc_scales_by_the_maximum_pads_short_and_cuts_long_clips():
    clip = tone(700, 0.6) // 3
    padded = np.concatenate([clip, np.zeros(16000 - len(clip), np.int16)])
    assert np.array_equal(speech_commands.kws_mfcc(clip), speech_commands.kws_mfcc(padded))
    assert np.allclose(speech_commands.kws_mfcc(clip), speech_commands.kws_mfcc(clip * 3), atol=1e-4)  # divided by its max
    long = np.concatenate([tone(700), tone(3000)])
    assert np.array_equal(speech_commands.kws_mfcc(long), speech_commands.kws_mfcc(long[:16000]))


def test_kws_mfcc_divides_by_the_largest_value_not_the_largest_magnitude():
    clip = np.minimum(tone(1000, 0.9), 100).astype(np.int16)  # max 100, min -8000: Tiny's tf.reduce_max gives 100
    audio = np.pad(clip / 100.0, (0, 16000 - len(clip)))
    mel = af.tf_stft_magnitude(audio, 480, 320) @ af.tf_linear_to_mel_weight_matrix(40, 257, RATE, 20.0, 4000.0)
    expected = af.tf_mfccs_from_log_mel_spectrograms(np.log(mel + 1e-6))[:, :10]
    assert np.allclose(speech_commands.kws_mfcc(clip), expected, atol=1e-4)


def test_toycar_vectors_of_silence_and_their_count():
    vectors = toycar.log_mel_vectors(np.zeros(160000, np.int16))  # a 10 s clip: 313 frames, 200 kept
    assert vectors.shape == (196, 640)
    assert np.allclose(vectors, 10 * np.log10(sys.float_info.epsilon))
    assert toycar.log_mel_vectors(np.zeros(32000, np.int16)).shape == (9, 640)  # 63 frames -> 13 kept -> 9


def test_toycar_vectors_concatenate_five_frames_and_a_tone_lands_in_its_slaney_band():
    vectors = toycar.log_mel_vectors(np.concatenate([tone(1000, 1.0), noise(1.0, seed=3, amplitude=3000)]))
    for t in range(1, 5):  # vector i holds frames i..i+4, frame-major
        assert np.array_equal(vectors[:-t, 128 * t:128 * (t + 1)], vectors[t:, :128])
    centres = af.slaney_mel_to_hz(np.linspace(0, af.slaney_hz_to_mel(8000.0), 130))[1:-1]
    pure = toycar.log_mel_vectors(tone(1000, 2.0))
    assert pure[0, :128].argmax() == np.abs(centres - 1000).argmin()


# --- speech-commands folders --------------------------------------------------------------------

@pytest.fixture()
def kws_test_set(tmp_path) -> Path:
    """The test-set archive's layout: one folder per class."""
    root = tmp_path / "speech_commands_test_set_v0.02"
    write_wav(root / "yes" / "aaaa1111_nohash_0.wav", tone(1000))
    write_wav(root / "yes" / "bbbb2222_nohash_0.wav", tone(1200, 0.8))
    write_wav(root / "no" / "aaaa1111_nohash_0.wav", tone(400))
    write_wav(root / "_silence_" / "silence_0.wav", noise(1.0, seed=0))
    write_wav(root / "_unknown_" / "cccc3333_nohash_1.wav", tone(2500))
    (root / "README.md").write_text("not a wav")
    return root


def test_speech_commands_test_archive_labels_order_and_quantised_features(kws_test_set):
    samples = speech_commands.load(kws_test_set, None, [KWS_INPUT], {}, None)
    files = {"yes_aaaa1111_nohash_0.wav": ("yes/aaaa1111_nohash_0.wav", 9),
             "yes_bbbb2222_nohash_0.wav": ("yes/bbbb2222_nohash_0.wav", 9),
             "no_aaaa1111_nohash_0.wav": ("no/aaaa1111_nohash_0.wav", 3),
             "_silence__silence_0.wav": ("_silence_/silence_0.wav", 10),
             "_unknown__cccc3333_nohash_1.wav": ("_unknown_/cccc3333_nohash_1.wav", 11)}
    order = tfds_order(list(files))
    assert samples.task == "classification" and len(samples) == 5
    assert samples.labels.tolist() == [files[k][1] for k in order]
    for i, key in enumerate(order):  # each sample is its file's features, computed as Tiny does
        assert np.array_equal(samples.raw[i], speech_commands.kws_mfcc(read_pcm16(kws_test_set / files[key][0], RATE)))
    feed = samples.feeds[0]["input_1"]
    assert feed.shape == (1, 49, 10, 1) and feed.dtype == np.int8
    assert np.array_equal(feed, to_model_input(samples.raw[0].reshape(1, 49, 10, 1), KWS_INPUT))


def test_speech_commands_limit_takes_the_first_n_in_order(kws_test_set):
    full = speech_commands.load(kws_test_set, None, [KWS_INPUT], {}, None)
    two = speech_commands.load(kws_test_set, 2, [KWS_INPUT], {}, None)
    assert len(two) == 2 and two.labels.tolist() == full.labels[:2].tolist()
    assert np.array_equal(two.raw, full.raw[:2]) and "2 of 5 utterances" in two.source


def test_speech_commands_float_input_gets_the_real_features(kws_test_set):
    spec = TensorSpec("mfcc", (1, 49, 10), "float32")
    samples = speech_commands.load(kws_test_set, None, [spec], {}, "kws-mfcc")
    assert samples.feeds[0]["mfcc"].dtype == np.float32 and np.array_equal(samples.feeds[0]["mfcc"][0], samples.raw[0])


def test_speech_commands_main_archive_uses_testing_list_and_cuts_background_noise(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    write_wav(root / "yes" / "aaaa1111_nohash_0.wav", tone(1000))
    write_wav(root / "yes" / "dddd4444_nohash_0.wav", tone(900))  # a training file: not listed, not scored
    write_wav(root / "bed" / "eeee5555_nohash_0.wav", tone(300))
    write_wav(root / "_background_noise_" / "pink.wav", noise(2.5, seed=7))
    (root / "testing_list.txt").write_text("yes/aaaa1111_nohash_0.wav\nbed/eeee5555_nohash_0.wav\n")
    (root / "validation_list.txt").write_text("yes/dddd4444_nohash_0.wav\n")
    samples = speech_commands.load(root, None, [KWS_INPUT], {}, None)
    # 40000 samples of noise -> clips starting at 0, 8000, 16000 (TFDS: range(0, len - 16000, 8000))
    keys = {"yes_aaaa1111_nohash_0.wav": 9, "bed_eeee5555_nohash_0.wav": 11,
            **{f"_background_noise__pink.wav_{s}": 10 for s in (0, 8000, 16000)}}
    assert samples.labels.tolist() == [keys[k] for k in tfds_order(list(keys))]
    cut = noise(2.5, seed=7)[8000:24000]
    index = tfds_order(list(keys)).index("_background_noise__pink.wav_8000")
    assert np.array_equal(samples.raw[index], speech_commands.kws_mfcc(cut))
    assert "testing_list.txt" in samples.source


def test_speech_commands_runs_in_the_real_tiny_kws_model(kws_test_set):
    model = model_file.resolve(str(KWS_MODEL))
    session = runtimes.open_session(model, "litert", RuntimeOptions())
    samples = speech_commands.load(kws_test_set, None, session.info.inputs, {}, None)
    out_spec = session.info.outputs[0]
    for feed in samples.feeds:
        (raw,) = session.run(feed)
        probs = (raw.astype(np.float32) - out_spec.zero_point) * out_spec.scale  # softmax, int8 at 1/256 steps
        assert raw.shape == (1, 12) and raw.dtype == np.int8
        assert (probs >= 0).all() and (probs <= 1).all() and probs.sum() == pytest.approx(1.0, abs=12 / 256)


# --- toycar folders -----------------------------------------------------------------------------

@pytest.fixture()
def toycar_dir(tmp_path) -> Path:
    test = tmp_path / "ToyCar" / "test"
    write_wav(test / "normal_id_01_00000000.wav", tone(500, 2.0))
    write_wav(test / "normal_id_01_00000001.wav", tone(700, 2.0))
    write_wav(test / "anomaly_id_01_00000000.wav", noise(2.0, seed=1, amplitude=5000))
    write_wav(test / "normal_id_02_00000000.wav", tone(900, 2.5))
    return test


def test_toycar_segments_labels_and_clip_grouping(toycar_dir):
    samples = toycar.load(toycar_dir, None, [AD_INPUT], {}, None)
    names = ["normal_id_01_00000000.wav", "anomaly_id_01_00000000.wav", "normal_id_01_00000001.wav",
             "normal_id_02_00000000.wav"]
    truth = samples.truth
    assert truth["clip_names"] == names and truth["clip_labels"].tolist() == [0, 1, 0, 0]
    assert truth["clip_machine_ids"] == ["id_01", "id_01", "id_01", "id_02"]
    # 2 s: 63 frames -> 9 vectors; 2.5 s: 1 + 40000 // 512 = 79 frames -> 29 kept -> 25 vectors
    assert truth["clip"].tolist() == [0] * 9 + [1] * 9 + [2] * 9 + [3] * 25 and truth["clip"].dtype == np.int64
    assert samples.labels.tolist() == [0] * 9 + [1] * 9 + [0] * 34
    assert samples.task == "anomaly" and len(samples) == 52
    assert samples.feeds[9]["input_1"].shape == (1, 640)
    expected = toycar.log_mel_vectors(read_pcm16(toycar_dir / names[1], RATE))
    assert np.array_equal(samples.raw[9:18], expected) and np.array_equal(samples.feeds[9]["input_1"][0], expected[0])


def test_toycar_limit_counts_clips_and_the_parent_folder_works(toycar_dir):
    samples = toycar.load(toycar_dir.parent, 2, [AD_INPUT], {}, None)  # ToyCar/ holding test/
    assert samples.truth["clip_names"] == ["normal_id_01_00000000.wav", "anomaly_id_01_00000000.wav"]
    assert len(samples) == 18 and "2 of 4 clips" in samples.source


def test_toycar_int8_input_is_quantised_with_its_parameters(toycar_dir):
    spec = TensorSpec("x", (1, 640), "int8", scale=0.5, zero_point=10)
    samples = toycar.load(toycar_dir, 1, [spec], {}, None)
    assert np.array_equal(samples.feeds[0]["x"], to_model_input(samples.raw[0].reshape(1, 640), spec))


def test_both_kinds_load_by_spec_string_and_through_the_inputs_cache(kws_test_set, toycar_dir, tmp_path):
    kws = datasets.load(f"speech-commands:{kws_test_set}:3", [KWS_INPUT], {})
    assert len(kws) == 3 and kws.n_classes == 12 and kws.origin["preprocess"] == "kws-mfcc"
    first = datasets.load(f"toycar:{toycar_dir}:3", [AD_INPUT], {}, inputs_cache=tmp_path / "cache")
    again = datasets.load(f"toycar:{toycar_dir}:3", [AD_INPUT], {}, inputs_cache=tmp_path / "cache")
    assert again.origin["inputs_cache"]["hit"] and again.task == "anomaly"
    assert np.array_equal(again.truth["clip"], first.truth["clip"]) and again.truth["clip_names"] == first.truth["clip_names"]
    assert np.array_equal(again.labels, first.labels) and len(again) == 27


# --- clear failures -----------------------------------------------------------------------------

def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match=r"speech-commands folder .*nowhere does not exist; give the Speech Commands"):
        speech_commands.load(tmp_path / "nowhere", None, [KWS_INPUT], {}, None)
    with pytest.raises(DatasetError, match=r"holds no Speech Commands WAVs"):
        speech_commands.load(tmp_path, None, [KWS_INPUT], {}, None)
    with pytest.raises(DatasetError, match=r"toycar folder .*nowhere does not exist"):
        toycar.load(tmp_path / "nowhere", None, [AD_INPUT], {}, None)
    with pytest.raises(DatasetError, match=r"holds no WAV files; give the DCASE 2020 ToyCar test folder"):
        toycar.load(tmp_path, None, [AD_INPUT], {}, None)


def test_wrong_layouts_say_what_is_expected(tmp_path):
    write_wav(tmp_path / "kws" / "yes" / "a_nohash_0.wav", tone(1000))
    write_wav(tmp_path / "kws" / "bed" / "b_nohash_0.wav", tone(1000))
    with pytest.raises(DatasetError, match=r"word folders outside the 12 classes \(bed\) but no testing_list.txt"):
        speech_commands.load(tmp_path / "kws", None, [KWS_INPUT], {}, None)
    (tmp_path / "kws" / "testing_list.txt").write_text("yes/a_nohash_0.wav\nyes/gone_nohash_0.wav\n")
    with pytest.raises(DatasetError, match=r"lists 1 files not in .* \(first: yes/gone_nohash_0.wav\)"):
        speech_commands.load(tmp_path / "kws", None, [KWS_INPUT], {}, None)
    write_wav(tmp_path / "eval" / "id_05_00000000.wav", tone(500, 2.0))
    with pytest.raises(DatasetError, match=r"id_05_00000000.wav .* not named normal_id_XX_N.wav .* cannot be scored"):
        toycar.load(tmp_path / "eval", None, [AD_INPUT], {}, None)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 1, "samples": np.zeros(16000, np.uint8)}, r"yes/x.wav holds 8-bit samples; .* needs 16-bit PCM"),
    ({"channels": 2, "samples": np.zeros(32000, np.int16)}, r"yes/x.wav has 2 channels; the dataset needs mono"),
    ({"rate": 44100, "samples": np.zeros(44100, np.int16)}, r"yes/x.wav is sampled at 44100 Hz; the dataset needs 16000 Hz"),
])
def test_wavs_in_another_form_are_named(tmp_path, kwargs, message):
    write_wav(tmp_path / "yes" / "x.wav", **kwargs)
    with pytest.raises(DatasetError, match=message):
        speech_commands.load(tmp_path, None, [KWS_INPUT], {}, None)


def test_a_file_that_is_no_wav_is_named(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "x.wav").write_bytes(b"ID3 this is an mp3")
    with pytest.raises(DatasetError, match=r"yes/x.wav is not a readable PCM WAV file"):
        speech_commands.load(tmp_path, None, [KWS_INPUT], {}, None)


def test_too_short_toycar_clip_is_named(tmp_path):
    write_wav(tmp_path / "normal_id_01_00000000.wav", tone(500, 1.0))
    with pytest.raises(DatasetError, match=r"normal_id_01_00000000.wav holds 16000 samples; .* at least 27648"):
        toycar.load(tmp_path, None, [AD_INPUT], {}, None)


def test_models_that_do_not_fit_the_features_say_both_shapes(kws_test_set, toycar_dir):
    transposed = TensorSpec("x", (1, 10, 49, 1), "float32")
    with pytest.raises(DatasetError, match=r"gives 49x10x1 float features per sample, but input 'x' takes 1x10x49x1 float32"):
        speech_commands.load(kws_test_set, None, [transposed], {}, None)
    with pytest.raises(DatasetError, match=r"gives 640 float features per sample, but input 'x' takes 1x3x224x224 float32"):
        toycar.load(toycar_dir, 1, [TensorSpec("x", (1, 3, 224, 224), "float32")], {}, None)
    with pytest.raises(DatasetError, match=r"but the model has 2 inputs \(a, b\)"):
        toycar.load(toycar_dir, 1, [TensorSpec("a", (1, 640), "float32"), TensorSpec("b", (1, 1), "float32")], {}, None)
    with pytest.raises(DatasetError, match=r"takes 1x640 int64"):
        toycar.load(toycar_dir, 1, [TensorSpec("ids", (1, 640), "int64")], {}, None)


def test_bad_preprocess_and_limit(kws_test_set, toycar_dir):
    with pytest.raises(DatasetError, match=r"preprocessed as kws-mfcc \(MLPerf Tiny KWS\), not imagenet-vgg"):
        speech_commands.load(kws_test_set, None, [KWS_INPUT], {}, "imagenet-vgg")
    with pytest.raises(DatasetError, match=r"preprocessed as toycar-logmel"):
        toycar.load(toycar_dir, None, [AD_INPUT], {}, "kws-mfcc")
    with pytest.raises(DatasetError, match=r"selects no utterances"):
        speech_commands.load(kws_test_set, 0, [KWS_INPUT], {}, None)
