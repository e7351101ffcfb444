import Postroom
print("postroom")
