"""RL for M1-class policies: the M1 paper's CISPO objective beside GRPO and DAPO (`objectives`), a
verifiable addition task graded by the AIME suite's math-verify grader (`task`), rollouts and
trainable log-probs on the reference model (`rollout`), and a CPU comparison experiment (`experiment`)."""
