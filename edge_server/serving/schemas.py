"""The JSON shapes of the HTTP API (they document the OpenAPI schema too)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    """One class and its score."""

    label: str
    index: int = Field(description="Output index of the class (line of the labels file).")
    score: float = Field(ge=0.0, le=1.0)


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    sha256: str


class ImageInfo(BaseModel):
    """The uploaded image as decoded."""

    width: int = Field(description="Width of the upright image, in pixels.")
    height: int = Field(description="Height of the upright image, in pixels.")
    format: str = Field(description="Detected file format, e.g. JPEG or PNG.")
    orientation_applied: bool = Field(description="Whether an EXIF orientation was applied.")
    resize: str = Field(
        description="How the image was fitted to the model's input (squash, center-crop or "
        "letterbox): the request's `resize=`, else the model's own fit.",
        examples=["center-crop"],
    )


class Timing(BaseModel):
    """Where the time went, in milliseconds."""

    queue: float = Field(description="Waiting for the interpreter.")
    decode: float
    preprocess: float
    inference: float
    postprocess: float
    total: float = Field(description="From the request's arrival to the answer.")


class ClassifyResponse(BaseModel):
    """The answer to `POST /classify`."""

    model: ModelRef
    predictions: list[Prediction] = Field(description="Best first.")
    image: ImageInfo
    timing_ms: Timing


class PixelBox(BaseModel):
    """A box in whole pixels of the upright original image (EXIF applied, clamped to it)."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int


class NormalizedBox(BaseModel):
    """The same box as fractions (0..1) of the upright image's width and height."""

    x_min: float = Field(ge=0.0, le=1.0)
    y_min: float = Field(ge=0.0, le=1.0)
    x_max: float = Field(ge=0.0, le=1.0)
    y_max: float = Field(ge=0.0, le=1.0)


class DetectedObject(BaseModel):
    """One object: its class, score and where it is."""

    label: str
    index: int = Field(
        description="Class id the model gave (its label map's line, offset applied)."
    )
    score: float = Field(ge=0.0, le=1.0)
    box: PixelBox
    box_normalized: NormalizedBox
    sub_label: str | None = Field(
        None,
        description="With `classify=NAME`: the top label of that classifier or learned model "
        "for the object's box (`unknown` when it is none of a learned model's classes).",
    )
    sub_score: float | None = Field(None, ge=0.0, le=1.0, description="The sub label's score.")


class DetectResponse(BaseModel):
    """The answer to `POST /detect`."""

    model: ModelRef
    classifier: ModelRef | None = Field(
        None, description="With `classify=NAME`: the model that gave the sub labels."
    )
    detections: list[DetectedObject] = Field(description="Best first.")
    image: ImageInfo
    timing_ms: Timing


class SegmentClass(BaseModel):
    """One class present in the picture: how much of it, and where."""

    label: str
    index: int = Field(description="The class id (line of the labels file; 0 is background).")
    fraction: float = Field(
        ge=0.0, le=1.0, description="Share of the picture's pixels (of the crop, with `crop`)."
    )
    pixels: int = Field(description="Its pixels at the upright image's full size.")
    box: PixelBox = Field(
        description="The bounding box of its pixels, in whole-image pixels (maxima exclusive)."
    )


class RegionClass(BaseModel):
    """One class inside a named region."""

    label: str
    index: int
    fraction: float = Field(ge=0.0, le=1.0, description="Share of the region's pixels.")


class RegionCover(BaseModel):
    """What covers one named region of `regions=`."""

    name: str
    pixels: int = Field(description="The region's pixels inside the segmented picture.")
    classes: list[RegionClass] = Field(description="Largest first.")


class LegendEntry(BaseModel):
    """A class id of the mask, its label and the colour it is drawn in."""

    index: int
    label: str
    color: tuple[int, int, int] = Field(description="RGB.")


class Mask(BaseModel):
    """The class map at the picture's upright full size (the crop's, with `crop`)."""

    format: str = Field(description="`png`: a palette PNG whose pixel values are class ids.")
    width: int
    height: int
    left: int = Field(description="Where the mask's first column lies in the whole image.")
    top: int = Field(description="Where the mask's first row lies in the whole image.")
    data: str = Field(description="The PNG, base64.")
    legend: list[LegendEntry]


class SegmentResponse(BaseModel):
    """The answer to `POST /segment`."""

    model: ModelRef
    classes: list[SegmentClass] = Field(description="Every class present, largest first.")
    regions: list[RegionCover] | None = Field(
        None, description="With `regions=`: what covers each named region."
    )
    mask: Mask | None = Field(None, description="With `mask=png`: the class map.")
    image: ImageInfo
    timing_ms: Timing


class QuantizationInfo(BaseModel):
    """Affine quantization of a tensor (scale 0 means not quantized)."""

    scale: float
    zero_point: int


class TensorInfo(BaseModel):
    """Shape and type of a model tensor."""

    shape: list[int]
    dtype: str
    quantization: QuantizationInfo


class ModelDescription(BaseModel):
    """A loaded model and how it runs (`GET /v1/models`)."""

    name: str = Field(description="What requests call it (`?model=`).")
    default: bool = Field(description="Whether requests that name no model get this one.")
    task: str = Field(
        description="classification (`/classify`) or detection (`/detect`): what it answers."
    )
    file: str
    sha256: str
    input: TensorInfo
    output: TensorInfo
    output_kind: str = Field(description="probabilities, or logits (softmax applied).")
    labels: int = Field(description="Number of labels.")
    backend: str
    backend_version: str
    num_threads: int = Field(description="Interpreter threads of the first replica.")
    replica_threads: list[int] = Field(
        description="Interpreter threads of each replica (interpreters of the model; an invoke "
        "runs on the first free one, the first preferred)."
    )
    xnnpack: bool = Field(description="Whether the runtime reported the XNNPACK delegate.")
    resize: str = Field(
        description="How images are fitted to the input unless a request says otherwise "
        "(`resize=`): squash, center-crop or letterbox."
    )


class ModelList(BaseModel):
    """`GET /v1/models`."""

    models: list[ModelDescription]


class Health(BaseModel):
    """Liveness or readiness; on a Raspberry Pi, liveness adds the board's health."""

    status: str
    board: Annotated[
        dict[str, Any] | None,
        Field(description="Raspberry Pi temperature, CPU frequency and throttling flags."),
    ] = None
    mqtt: Annotated[
        dict[str, Any] | None,
        Field(description="With EDGE_MQTT_URL set: `connected` (bool), `broker` and `prefix`."),
    ] = None
    faces: Annotated[
        dict[str, Any] | None,
        Field(
            description="With faces served: `people` registered, the `threshold` set, the "
            "`effective_threshold` calibrated on them, whether `calibrated`, and the "
            "`descriptor` model."
        ),
    ] = None


class ReloadRequest(BaseModel):
    """`POST /v1/models/reload`: which served model to reload, and from which file."""

    name: Annotated[
        str | None, Field(description="The served model to reload; default: the default model.")
    ] = None
    model: Annotated[
        str | None,
        Field(
            description="Load this instead of the model's current file: a catalog name or "
            "alias, or a .tflite file name in EDGE_MODELS_DIR."
        ),
    ] = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None


class BatchItem(BaseModel):
    """One image of a batch: its answer, or the problem that stopped it."""

    file: str = Field(description="The part's file name, as sent.")
    status: int = Field(description="200, or the status this image alone would have got.")
    result: ClassifyResponse | None = None
    problem: Problem | None = None


class BatchResponse(BaseModel):
    """The answer to `POST /classify/batch`: one item per image, in the order sent."""

    items: list[BatchItem]


class LearnedClass(BaseModel):
    """One class of a learned model."""

    label: str
    examples: int


class LearnedModelDescription(BaseModel):
    """A learned model: its classes, how it decides `unknown`, and how it is stored."""

    name: str
    status: str = Field(
        description="ready (served), or unusable (see `problem`: a damaged file, or learned "
        "with another embedding model)."
    )
    problem: str | None = None
    classes: list[LearnedClass]
    examples: int
    embedder: str | None = Field(None, description="The embedding model it was learned with.")
    threshold: float | None = Field(None, description="Cosine under which a photo is `unknown`.")
    threshold_rule: str | None = Field(None, description="How the threshold was chosen.")
    threshold_set: bool = Field(
        False, description="Whether the threshold is this model's own setting (not calibrated)."
    )
    sha256: str | None = Field(None, description="Changes with every change to the model.")
    size_bytes: int = Field(description="Its file's size.")


class LearnedModelList(BaseModel):
    """`GET /v1/learned`."""

    models: list[LearnedModelDescription]


class ThresholdChange(BaseModel):
    """`PATCH /v1/learned/{name}`: the model's own threshold, or null to calibrate it again."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(ge=0.0, le=1.0)


class PeopleList(BaseModel):
    """`GET /v1/faces`: the people faces are recognised as."""

    people: list[str] = Field(description="Their names, sorted.")
    # Optional, so a client reads a server that does not give them.
    threshold: float | None = Field(
        None, description="EDGE_FACE_THRESHOLD, the descriptor distance set."
    )
    effective_threshold: float | None = Field(
        None,
        description="The distance in effect: the setting, or lower when two registered people "
        "are close (EDGE_FACE_CALIBRATION); it maps to confidence 0.67.",
    )
    calibrated: bool | None = Field(
        None, description="Whether the threshold is calibrated on the people."
    )
    descriptor: str | None = Field(
        None,
        description="The model describing faces: dlib's, or EDGE_FACE_EMBEDDER's name and sha256.",
    )


class PersonRegistration(BaseModel):
    """`POST /v1/faces`: what the photos did."""

    name: str
    added: int = Field(description="Photos added by this request (one face each).")
    total: int = Field(description="Photos the person now has.")
    created: bool = Field(description="True when the person is new.")


class PeopleImport(BaseModel):
    """`POST /v1/faces/import`."""

    people: int = Field(description="People the file held (added to, or created).")
