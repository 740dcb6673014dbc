"""Every default value and limit in one place.

The schedule's keys (:mod:`.spec`), the dream engine (:class:`.ascent.DreamSettings`), the
commands ``dream`` and ``gallery`` and the Python API all read their defaults from here, so a
still dreamed with ``dreamvid dream`` looks like a frame of a video with the same settings.
This module imports nothing (parsing a schedule must not import torch).
"""

VERSION = "0.1.0"  # dreamvid's release (dreamvid.__version__; written into every checkpoint)

# -- the dream (per segment in a schedule; keyframeable) ------------------------------------
ITERATIONS = 10  # gradient-ascent steps per octave, per frame
STEP = 0.01  # step size in image units ([0, 1]) per iteration
OCTAVES = 3  # image scales dreamed, coarse to fine
OCTAVE_SCALE = 1.4  # size ratio between consecutive octaves
JITTER = 32  # largest random roll in pixels, per step (hides the network's stride grid)
LAYERS = "mixed3"  # circles and eyes: the classic DeepDream look
OBJECTIVE = "square"  # mean of squared activations (Google's notebook); "mean" is softer
GRADIENT_NORM = "mean"  # divide the gradient by its mean |value|; "laplacian": per Laplacian band first
CADENCE = 1  # dream every frame; k > 1 dreams every k-th frame and crossfades the warped dreams between (docs/schedule.md)

# -- the camera (per segment; keyframeable) --------------------------------------------------
ZOOM = 1.02  # scale per frame (> 1 zooms in)
ROTATE = 0.0  # degrees per frame, counter-clockwise
TRANSLATE = (0.0, 0.0)  # pixels per frame (x right, y down)
CENTER = (0.5, 0.5)  # the point zoom and rotation turn around, fractions of the frame (x, y)
INTERPOLATION = "linear"  # between keyframes: linear | step | smooth
CAMERAS = ("dreamvid", "deforum")  # how zoom, rotate and translate compose (dreamvid/pixels/camera.py)
CAMERA = "dreamvid"  # turn and zoom about the centre, then translate; "deforum": Deforum's 2D warp

# -- creative controls (per segment; the weights keyframeable) --------------------------------
GUIDE_WEIGHT = 1.0  # weight of the guide image's objective against the layers' (with `guide:` set)
MASK_STRENGTH = 1.0  # 1: nothing dreams outside the mask's white part; 0: the mask is off
MASK_FOLLOWS = "camera"  # the mask moves with the camera (or stays fixed to the "frame")
MAX_GUIDE_VECTORS = 1024  # a guide's feature vectors per layer (more are average-pooled down)

# -- colour control against drift over long zooms (dreamvid/colour.py, docs/quality.md) ------
COLOURS = ("lab", "histogram", "none")  # the colour modes (dreamvid/pixels/colour.py)
COLOUR = "histogram"  # per-channel histogram match to the reference after each dream
COLOUR_REFERENCE = "auto"  # the input image, or the first dreamed frame when the input is noise
COLOUR_STRENGTH = 0.75  # the weakest histogram match that met the drift targets
SATURATION_MATCH = 1.0  # each pixel's saturation quantile-mapped to the reference's (at constant luma)
INPUT_BLEND = 0.0  # share of the input image mixed back into each frame
SMOOTHING = 0.0  # share of the camera-moved previous frame kept
CLIP_GUARD = 0.0  # frames reaching 0 or 1 are mapped into [clip_guard, 1 - clip_guard]
CLIP_GUARD_TAIL = 0.005  # share of values at each end the guard's range ignores (hot pixels, not the frame)
HISTOGRAM_LEVELS = 1 << 14  # levels the histogram match ranks a frame's values on: a count per level, not a sort

# -- a video clip as the input (dreamvid/video.py, docs/video.md); per segment ----------------
FLOWS = ("dis", "farneback", "raft", "none")  # optical flow methods (dreamvid/flow.py)
FLOW = "dis"  # OpenCV's DIS, CPU: as close to the true motion as Farneback and faster (docs/video.md)
FLOW_BLEND = 0.5  # share of the flow-warped previous output in a frame's start (docs/video.md: as steady as 0.7
# with the temporal term, and it lets the clip's own changes through)
TEMPORAL = 0.3  # pull toward the carried previous dream after every gradient step (docs/video.md)
VIDEO_ZOOM = 1.0  # with a video input the camera holds still unless the schedule moves it
RAFT_MAX_PIXELS = 1280 * 720  # RAFT estimates the flow of a larger clip at this many pixels and scales it up: its
# all-pairs correlation grows with the square of the area (at 1920x1080 about 11 GB for the two directions, at
# 1280x720 about 2.2 GB, docs/video.md); at or below 720p nothing changes
FLOW_AHEAD_DEVICES = ("cuda",)  # renders on these devices compute a clip's CPU flow (dis, farneback) one frame
# ahead in a thread, while the device dreams; on the CPU it would share the dream's cores (docs/performance.md)

# -- the music's envelope, per frame (per segment; keyframeable; docs/audio.md) -------------------
ATTACK = 0.0  # s: rms, bass, mid, treble and onset rise to a louder frame at once (as before the key existed)
RELEASE = 0.0  # s: ... and fall to a quieter one at once
MAX_ENVELOPE_S = 10.0  # the longest attack or release

# -- the video -------------------------------------------------------------------------------
SIZE = (1280, 720)  # width, height
FPS = 30  # with an image or noise input; a video input's own rate by default (`fps: auto`)
FPS_AUTO = "auto"
AUDIO_INPUT = "input"  # the `audio` value that keeps a video input's own sound
SEED = 0
IMPORT_LAYERS = "mixed0 mixed3 mixed4"  # dreamvid import: one segment each, like the demo (edges, eyes, motifs)
SCHEDULE_VERSION = 1  # the schedule format this dreamvid reads and `dreamvid import` writes (`version:`)
MODEL = "inception_v3"  # the embedded TF InceptionV3 (dreamvid/model.py)
DEVICE = "auto"  # cuda when present, else cpu
CHECKPOINT_EVERY = 50  # frames between checkpoints (and video parts)
TILE = "auto"  # gradient tiles only when a frame does not fit the GPU (never on the CPU)
COMPILE = "auto"  # torch.compile on CUDA, not on the CPU (where it does not pay)
PRECISIONS = ("auto", "fp32", "bf16")  # the choices (dreamvid/precision.py)
PRECISION = "auto"  # bf16 autocast on CUDA cards with bf16, and on CPUs where it is native and faster; else fp32
CODEC = "auto"  # the encoder picks: libx264 (or NVENC where it works)
CRF = 18
PRESET = "medium"
PIX_FMT = "yuv420p"
# Video colour (dreamvid/media/colourspace.py). HD is what players decode with BT.709 when a stream is
# untagged: a width of 1280 or a height of 720 and up; below it they assume BT.601.
HD_WIDTH, HD_HEIGHT = 1280, 720
HD_MATRIX = "bt709"  # the YCbCr matrix of the HD videos dreamvid writes (ffmpeg's colorspace name)
SD_MATRIX = "smpte170m"  # below HD: BT.601, what every player assumes there, tagged or not
PRIMARIES = TRANSFER = "bt709"  # the frames are sRGB: BT.709 primaries; tagged with the BT.709 transfer, as HD video is
RANGE = "tv"  # limited range (16-235) for YCbCr, as every player expects; RGB streams are full range

# -- the render's newest frame (docs/studio.md: a peek at a render in progress) -----------------
PEEK_EVERY = 2.0  # seconds between two writes of the peek JPEG, at most one per frame
PEEK_SIDE = 640  # the peek JPEG's longer side, pixels (smaller frames keep their size)
PEEK_QUALITY = 80  # its JPEG quality

# -- batch on a Ray cluster (dreamvid/batch/reach.py, docs/batch.md) ---------------------------
RAY_PROBE_S = 10.0  # how long --ray ADDRESS waits for the cluster to answer (Ray's own client waits 40 s)

# -- limits ----------------------------------------------------------------------------------
MIN_SIDE, MAX_SIDE = 32, 8192  # frame width and height, pixels
MAX_FPS = 240
MAX_INPUT_PIXELS = 1 << 27  # an input image's pixels (134 million: a 100-megapixel photo fits)
MAX_FRAMES = 1_000_000  # frames in a video (9 h 15 min at 30 fps): formulas are checked at every frame
MIN_TILE = 128  # smallest gradient tile side: below it the deeper layers see too little
