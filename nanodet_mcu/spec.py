"""Facts of the NanoDet-m-0.5x stride-32 model that every part of the tool shares."""

INPUT_SIZE = 320
STRIDE = 32
GRID = INPUT_SIZE // STRIDE  # 10
NUM_CLASSES = 80
REG_MAX = 7
NUM_BINS = REG_MAX + 1  # 8 bins per side
BOX_CHANNELS = 4 * NUM_BINS  # 32

# BGR order, as the official NanoDet config and NXP's zoo example use.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)

SCORE_THRESHOLD = 0.20
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100

SCORES_SHAPE = (1, GRID, GRID, NUM_CLASSES)
BOXES_SHAPE = (1, GRID, GRID, BOX_CHANNELS)
INPUT_SHAPE = (1, INPUT_SIZE, INPUT_SIZE, 3)

COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# COCO category ids of the 80 contiguous classes (the dataset skips some numbers).
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)

assert len(COCO_LABELS) == NUM_CLASSES and len(COCO_CATEGORY_IDS) == NUM_CLASSES
