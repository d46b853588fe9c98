"""The clamp options' bad inputs and what each must say (``infer``, ``sim``, ``compare``)."""

CLAMP_ERRORS = [
    (["--mask", "generation"], "layer 2 is clamped by mask 'generation'"),
    (["--mask", "generation", "--clamp", "2={bad}"], "the spec's layer 2 has 10"),
    (["--clamp", "2={lab}"], "layer 2 is free under mask 'inference'"),
    (["--mask", "generation", "--clamp", "2={lab}", "--input", "{lab}"],
     "the input layer is free under mask 'generation'"),
    (["--mask", "training", "--clamp", "2={lab}"], "different sample counts"),
    (["--mask", "nosuch"], "unknown clamp mode 'nosuch'"),
    (["--clamp", "x=y"], "give LAYER=FILE"),
    (["--mask", "generation", "--clamp", "7={lab}"], "layers 0..2"),
]
