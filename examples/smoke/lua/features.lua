-- Exercises the Lua interpreter: integers and floats, string patterns, tables and sorting, closures,
-- coroutines, metatables, error handling and string.pack. Arguments: a number n.
local n = tonumber(arg[1]) or 10

local function sieve(limit)
  local composite, primes = {}, {}
  for i = 2, limit do
    if not composite[i] then
      primes[#primes + 1] = i
      for j = i * i, limit, i do composite[j] = true end
    end
  end
  return primes
end
print("primes up to " .. n .. ": " .. table.concat(sieve(n), " "))

print(string.format("integers: %d // 7 = %d, %d %% 7 = %d, 2^62 = %d, maxinteger + 1 wraps: %s",
  100, 100 // 7, 100, 100 % 7, 1 << 62, tostring(math.maxinteger + 1 == math.mininteger)))
print(string.format("floats: pi = %.6f, sqrt(2) = %.4f, 7 / 2 = %s", math.pi, math.sqrt(2), 7 / 2))

local words = {}
for word in ("the quick brown fox jumps over the lazy dog the end"):gmatch("%a+") do
  words[word] = (words[word] or 0) + 1
end
local keys = {}
for word in pairs(words) do keys[#keys + 1] = word end
table.sort(keys, function(a, b) return words[a] > words[b] or (words[a] == words[b] and a < b) end)
local counted = {}
for i = 1, 3 do counted[i] = keys[i] .. "=" .. words[keys[i]] end
print("words: " .. table.concat(counted, ", "))

local function counter()
  local count = 0
  return function() count = count + 1; return count end
end
local next_id = counter()
next_id(); next_id()
print("closure: " .. next_id())

local fib = coroutine.wrap(function()
  local a, b = 0, 1
  while true do coroutine.yield(a); a, b = b, a + b end
end)
local fibs = {}
for i = 1, 12 do fibs[i] = fib() end
print("coroutine: " .. table.concat(fibs, ","))

local Vector = {}
Vector.__index = Vector
Vector.__add = function(a, b) return setmetatable({ x = a.x + b.x, y = a.y + b.y }, Vector) end
Vector.__tostring = function(v) return "(" .. v.x .. ", " .. v.y .. ")" end
local v = setmetatable({ x = 1, y = 2 }, Vector) + setmetatable({ x = 3, y = 4 }, Vector)
print("metatable: " .. tostring(v))

local ok, message = pcall(function() error({ code = 42 }) end)
print("pcall: " .. tostring(ok) .. " " .. message.code)
print("gsub: " .. ("hello world"):gsub("o", "0"))
print(string.format("pack: %s, %d bytes for \"<i4 s2\"",
  string.unpack("<i4", string.pack("<i4", -2)) == -2 and "round trip ok" or "BROKEN",
  #string.pack("<i4 s2", 7, "ab")))
