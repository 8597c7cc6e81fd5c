"""In-context linear regression with GPT-2 and looped transformers (Yang et al., ICLR 2024).

Shares only ``ltm_gym.core`` with the rest of the package.
"""
