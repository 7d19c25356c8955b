"""Corpus builds: execution traces of whole data sets of programs, as training data.

inputs.py   the data sets read: HumanEval, MBPP and plain JSONL (.gz): tasks and calls
worker.py   one process that runs (program, input) jobs, each in a child of its own,
            isolated and limited, and answers with the renderings and labels
build.py    the build: jobs handed out to workers (local processes or Ray tasks),
            records written as Parquet and JSONL, resume, progress, the summary
score.py    EvalPerf's differential performance score from the efficiency labels
"""
