# Evaluates a Vagrantfile without Vagrant and prints, as one JSON array, every
# setting made and every call on its config objects:
#   {"path": [...], "set": "box", "value": "generic/freebsd14"}
#   {"path": [...], "call": "provision", "args": ["deploy"], "kwargs": {"type": "ansible"}}
# A block's objects get the path of the call ("define:NAME", "provider:hyperv",
# "provision:deploy"); a provider block's second object (override) adds "override".
#   ruby vagrantfile_probe.rb PATH/Vagrantfile
require "json"

class HvbsdProbe
  def initialize(path, events)
    @path = path
    @events = events
    @children = {}
  end

  def method_missing(name, *args, **kwargs, &block)
    key = name.to_s
    if key.end_with?("=")
      @events << { "path" => @path, "set" => key.chomp("="), "value" => args.first }
      return args.first
    end
    return @children[key] ||= HvbsdProbe.new(@path + [key], @events) if args.empty? && kwargs.empty? && block.nil?

    @events << { "path" => @path, "call" => key, "args" => args, "kwargs" => kwargs }
    if block
      scope = @path + ["#{key}:#{args.first}"]
      block.call(HvbsdProbe.new(scope, @events), HvbsdProbe.new(scope + ["override"], @events))
    end
    nil
  end

  def respond_to_missing?(_name, _private = false)
    true
  end
end

module Vagrant
  EVENTS = []

  def self.configure(_version)
    yield HvbsdProbe.new([], EVENTS)
  end

  def self.require_version(*_requirements); end
end

load ARGV.fetch(0)
puts JSON.generate(Vagrant::EVENTS)
