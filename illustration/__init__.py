"""From an answer to a picture: rewrite the scene, keep characters consistent, sample with CLIP guidance."""
