#!/usr/bin/env bash
# The main job: set up (or reuse) .venv, then run the chapter on the generated sample data.
source "$(dirname "$0")/setup.sh"
exec mlr chapter "$@"
