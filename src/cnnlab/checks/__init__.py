"""The option vocabulary, the bottom of the house: checkers (`fields`), option groups declared once (`options`),
output places (`places`) and the project's errors (`errors`). It imports nothing else of cnnlab; every concept declares
its options with it, beside the code that uses them."""
