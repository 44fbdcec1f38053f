"""The model request every subcommand builds from the same --model/--input-* options."""

from __future__ import annotations

import argparse


def request_from_args(args: argparse.Namespace):
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaders import LoadRequest

    spec = None
    if args.input_spec:
        spec = InputSpec.parse(args.input_spec)
    elif args.input_shape:
        spec = InputSpec.from_shape(args.input_shape, args.input_dtype or "float32")
    if spec is not None and args.input_dtype:
        spec = spec.with_dtype(args.input_dtype)
    return LoadRequest(source=args.model, weights=args.weights, trust=args.trust,
                       trust_remote_code=args.trust_remote_code, input_spec=spec, input_dtype=args.input_dtype)
