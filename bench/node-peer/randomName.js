// The server's name, adjective-animal like the post's "slimy-cardinal": server.js requires
// this module once and uses the string it exports in every message.
const adjectives = ["slimy", "brave", "quiet", "shiny", "swift", "gentle", "curious", "mighty"];
const animals = ["cardinal", "otter", "badger", "heron", "lynx", "walrus", "gecko", "puffin"];

const pick = (words) => words[Math.floor(Math.random() * words.length)];

module.exports = `${pick(adjectives)}-${pick(animals)}`;
